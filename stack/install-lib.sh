# Sourced by the installers stack/*/install.sh, which install a tool into a directory that may sit
# in the per-user cache several clones share (each defines `die` first).

# Sets install_dir to the absolute path of the installer's one argument, its parent created; dies
# with the usage otherwise. Called as: resolve_install_dir <installer path> "$@"
resolve_install_dir() {
  [[ $# -eq 2 && -n $2 ]] || die "usage: bash $1 <install-dir>"
  mkdir -p "$(dirname "$2")" || die "cannot create the parent directory of $2"
  install_dir="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
}

# Moves a finished staging directory (beside install_dir) into place in one step; an older install
# (other sources) is moved aside first and removed afterwards.
swap_into_place() {
  local stage=$1
  if [[ -e $install_dir ]]; then
    mv "$install_dir" "$stage.old"
    mv "$stage" "$install_dir"
    rm -rf "$stage.old"
  else
    mv "$stage" "$install_dir"
  fi
}
