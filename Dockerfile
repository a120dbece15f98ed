# One image for every role of the service: `mm api`, `mm worker`, `mm ingest`, `mm gateway` (see docker-compose.yaml).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
USER node
ENTRYPOINT ["/app/bin/mm"]
CMD ["all"]
