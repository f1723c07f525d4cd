# ztunnel-ts image.
#   docker build -t ztunnel-ts:0.1.0 --build-arg GIT_REVISION=$(git rev-parse HEAD) .
# Stage 1 compiles the daemon (src/ only) and the native socket addon; stage 2 carries only the
# production dependencies, the compiled daemon, the addon and the files it reads at run time
# (proto/ for the gRPC messages, examples/ for the embedded default config).
# Base images are pinned to an exact Node.js release (the one package.json's `node` dev dependency
# brings); bump both together. User, signals and contents of the image: docs/image.md.
# .dockerignore keeps the build context to what is COPYed below (no .ztunnel/ keys, no node_modules).
FROM node:24.21.0-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY scripts ./scripts
# `npm ci` runs the install script, which rebuilds native/ (node-gyp rebuild: a stale host build
# in the context is cleaned first).
COPY native ./native
RUN npm ci --no-audit --no-fund && test -f native/build/Release/ztunnel_native.node
COPY src ./src
COPY proto ./proto
COPY examples ./examples
# Only the daemon: a type error in a test or benchmark must not break the image.
RUN printf '{ "extends": "./tsconfig.json", "include": ["src/**/*.ts"], "exclude": ["src/**/*.test.ts"] }\n' > tsconfig.image.json \
 && npx tsc -p tsconfig.image.json \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:24.21.0-bookworm-slim
# The build's git revision and version as OCI labels (docker build --build-arg GIT_REVISION=$(git rev-parse HEAD)).
ARG GIT_REVISION=unknown
LABEL org.opencontainers.image.title="ztunnel-ts" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# tini as PID 1: forwards SIGTERM/SIGINT to node (the kernel ignores signals a PID 1 has no
# handler for, e.g. while ztunnel is still waiting for istiod at start) and reaps children.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/package.json /app/package.json
COPY --from=build /src/node_modules /app/node_modules
COPY --from=build /src/dist/src /app/dist/src
COPY --from=build /src/native/build/Release/ztunnel_native.node /app/native/build/Release/ztunnel_native.node
COPY --from=build /src/proto /app/proto
COPY --from=build /src/examples /app/examples
# The working directory is / as in Istio's ztunnel image, so the relative defaults
# ./var/run/secrets/istio/root-cert.pem, ./var/run/secrets/tokens/istio-token and
# ./etc/istio/config/mesh resolve to the paths Istio mounts (docs/spec/config.md §4-§5).
WORKDIR /
# The local CA (embedded default, FAKE_CA) keeps its root here; unused with istiod's CA.
RUN mkdir -p /var/lib/ztunnel-ts && chown 1337:1337 /var/lib/ztunnel-ts
# Logs are plain text unless LOG_FORMAT=json, as with Istio's ztunnel image (its Helm chart sets
# LOG_FORMAT=json only with logAsJson=true).
ENV NODE_ENV=production \
    ZTUNNEL_STATE_DIR=/var/lib/ztunnel-ts
# User: non-root (1337) by default, enough for dedicated mode and the embedded default.
# Shared (in-pod) mode needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN (setns) in the
# effective set, which Kubernetes grants only to a root process: the DaemonSet in
# deploy/kubernetes/ runs the container as uid 0 with exactly those capabilities and every other
# one dropped, as Istio's own ztunnel DaemonSet does.
USER 1337:1337
# 15008 HBONE, 15001/15006 capture, 15080 SOCKS5 (opt-in), 15020 metrics, 15021 readiness;
# 15000 (admin) binds to localhost only.
EXPOSE 15001 15006 15008 15020 15021
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/src/main.js"]
CMD ["run"]
