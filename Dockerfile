# The broker image, for people with Docker. `npm run image` builds the same image without a container
# engine (scripts/image/build.mjs), and the release publishes that one: Debian 12's glibc runtime and
# CA certificates, the same Node, the same paths, user, entrypoint, command, environment and port (a
# test compares this file with the image the script builds). No shell, no package manager.
ARG NODE_VERSION=24.22.3

# The build stage bundles the broker into one self-contained file (npm run build:broker).
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/
COPY src/ src/
RUN npm run build:broker

FROM gcr.io/distroless/cc-debian12
# The accounts (root, nobody, and the broker's fixed non-root user 10001) and name lookup order.
COPY scripts/image/rootfs/etc/passwd scripts/image/rootfs/etc/group scripts/image/rootfs/etc/nsswitch.conf /etc/
COPY --from=build /usr/local/bin/node /usr/bin/node
COPY --from=build /src/build/broker/index.js /app/index.js

WORKDIR /app
ENV NODE_ENV=production
# The Deployment also enforces runAsNonRoot and a read-only root filesystem.
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["/usr/bin/node", "/app/index.js"]
CMD ["--config", "/etc/k8s-ea/broker-config.yaml"]
