# Build stage: compile TypeScript with the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npm ci && npm prune --omit=dev

# Runtime stage: the compiled code and production dependencies only, as a non-root user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY config ./config
RUN useradd --system --home-dir /app --shell /usr/sbin/nologin dkim \
 && mkdir -p /app/keys && chown dkim:dkim /app/keys && chmod 0700 /app/keys
USER dkim
VOLUME ["/app/keys"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
# Mount your own config over /app/config: the shipped one listens on loopback only.
CMD ["run", "--config", "/app/config/dkim-proxy.toml"]
