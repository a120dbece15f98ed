// A few lines of history-API routing: every page of the console is a path below /console/, so a
// deep link reloads the same page (the API answers index.html for any such path).
import { type MouseEvent, type ReactNode, useEffect, useState } from "react";

export const BASE = "/console";

let listeners: (() => void)[] = [];

export function navigate(to: string): void {
  history.pushState(null, "", `${BASE}${to}`);
  for (const listener of listeners) listener();
}

/** The path below /console, e.g. "/incidents/web-1". */
function read(): string {
  return location.pathname.slice(BASE.length) || "/";
}

export function usePath(): string {
  const [path, setPath] = useState(read);
  useEffect(() => {
    const update = () => setPath(read());
    listeners.push(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners = listeners.filter((l) => l !== update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return path;
}

export function Link(props: { to: string; children: ReactNode; className?: string }) {
  const follow = (event: MouseEvent) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(props.to);
  };
  return (
    <a href={`${BASE}${props.to}`} onClick={follow} className={props.className}>
      {props.children}
    </a>
  );
}
