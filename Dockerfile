# One image for every role of the service: `mm api`, `mm worker`, `mm ingest`, `mm gateway` (see docker-compose.yaml).
# The build stage compiles and bundles with the dev tools; the image runs dist/ on plain node,
# with the production dependencies only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.sh scripts/build-console.sh scripts/bundle-workflows.ts ./scripts/
COPY console ./console
COPY src ./src
COPY migrations ./migrations
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY --from=build /app/dist ./dist
# The command signing key lives on a volume mounted here (docker-compose.yaml): the node user owns
# the folder, so a new named volume starts owned by it too.
RUN install -d -m 0700 -o node -g node /var/lib/mitigation-manager
USER node
ENTRYPOINT ["/app/bin/mm"]
CMD ["all"]
