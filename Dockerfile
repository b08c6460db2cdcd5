# The broker image, in two stages. The build stage installs the locked dependencies and bundles the
# broker into one self-contained file (npm run build:broker); the image itself holds Node and that
# one file: no node_modules, no sources, no shell tools beyond the base image's.
FROM node:24-alpine AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/
COPY src/ src/
RUN npm run build:broker

FROM node:24-alpine

# A fixed non-root user; the Deployment also enforces runAsNonRoot and a read-only root filesystem.
RUN addgroup -S -g 10001 broker && adduser -S -u 10001 -G broker -H -s /sbin/nologin broker

WORKDIR /app
COPY --from=build --chown=root:root /src/build/broker/index.js /app/index.js

ENV NODE_ENV=production
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["node", "/app/index.js"]
CMD ["--config", "/etc/k8s-ea/broker-config.yaml"]
