# Fulcrum in a container: small (Alpine, production dependencies only), runs as the unprivileged
# `node` user, reads its config from /etc/fulcrum/fulcrum.yaml (mount yours over it, or mount a
# directory at /etc/fulcrum that `node` (uid 1000) may write, to keep runtime changes in its state
# file), drains and exits on SIGTERM (`docker stop`), and reports its health through the admin API.
#
#   docker build -t fulcrum .
#   docker run --rm -p 8080:8080 -v "$PWD/fulcrum.yaml:/etc/fulcrum/fulcrum.yaml:ro" fulcrum
#
# The health check runs `fulcrum status`, which finds the admin API from the config file:
# keep an `admin` section in it (127.0.0.1:9000 is enough; the check runs inside the container).

FROM node:20-alpine AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:20-alpine AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY package.json fulcrum.schema.json ./
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY src/admin/dashboard ./src/admin/dashboard
COPY --chown=node:node deploy/fulcrum.example.yaml /etc/fulcrum/fulcrum.yaml
USER node
WORKDIR /etc/fulcrum
EXPOSE 8080 9000
# `fulcrum start` handles SIGTERM itself (finish requests in flight, exit 0); node runs as PID 1
# with its own handlers, so no init process is needed for that.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["node", "/app/dist/src/cli/main.js", "status", "--json", "-c", "/etc/fulcrum/fulcrum.yaml"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["start", "-c", "/etc/fulcrum/fulcrum.yaml"]
