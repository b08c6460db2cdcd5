# The broker image. dist/broker/index.js is a self-contained bundle (npm run build), so the image
# needs Node and that one file: no node_modules, no shell tools beyond the base image's.
FROM node:24-alpine

# A fixed non-root user; the Deployment also enforces runAsNonRoot and a read-only root filesystem.
RUN addgroup -S -g 10001 broker && adduser -S -u 10001 -G broker -H -s /sbin/nologin broker

WORKDIR /app
COPY --chown=root:root dist/broker/index.js /app/index.js

ENV NODE_ENV=production
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["node", "/app/index.js"]
CMD ["--config", "/etc/k8s-ea/broker-config.yaml"]
