# ztunnel-ts image. Stage 1 builds the TypeScript and the native socket addon; stage 2 carries only
# production dependencies, the compiled output and the addon.
FROM node:20-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY scripts ./scripts
COPY native ./native
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY examples ./examples
COPY proto ./proto
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# iptables is not needed by ztunnel itself (istio-cni programs the pod rules); keep the image lean.
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/native/build/Release/ztunnel_native.node ./native/build/Release/ztunnel_native.node
COPY --from=build /src/examples ./examples
COPY --from=build /src/proto ./proto
# Shared (in-pod) mode needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN (setns), as Istio's
# ztunnel DaemonSet grants; dedicated mode runs as an unprivileged user.
USER 1337:1337
ENV LOG_FORMAT=json
EXPOSE 15001 15006 15008 15020 15021
ENTRYPOINT ["node", "/app/dist/src/main.js"]
CMD ["run"]
