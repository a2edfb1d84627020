# Build stage: compile TypeScript with the dev dependencies, then drop them.
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
COPY config/examples/container.toml /etc/dkim-proxy/dkim-proxy.toml
RUN useradd --system --home-dir /app --shell /usr/sbin/nologin dkim \
 && install -d -o dkim -g dkim -m 0700 /etc/dkim-proxy/keys /var/spool/dkim-proxy
USER dkim
# Config and keys come from outside; the spool is scratch space for large messages.
VOLUME ["/etc/dkim-proxy", "/var/spool/dkim-proxy"]
EXPOSE 10025 10027 9090
# `docker stop` sends SIGTERM: dkim-proxy stops accepting and finishes the
# transactions in flight (up to 30 s), so give it that: docker stop -t 35,
# or stop_grace_period: 35s in compose.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/dist/src/cli/main.js", "health", "--config", "/etc/dkim-proxy/dkim-proxy.toml"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["run", "--config", "/etc/dkim-proxy/dkim-proxy.toml"]
