# heraldd image: build stage compiles TypeScript; the runtime stage has production dependencies only.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY protocol protocol
COPY store store
COPY daemon daemon
COPY cli cli
COPY test test
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim
# A numeric user: Kubernetes' runAsNonRoot can only verify a numeric USER, and the Helm chart's
# runAsUser/fsGroup name the same 10001. /shared is created owned by it so that a fresh named volume
# mounted there (the compose demo) copies that ownership on first mount.
RUN groupadd --gid 10001 herald \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/herald --no-create-home herald \
 && mkdir -p /var/lib/herald /shared && chown 10001:10001 /var/lib/herald /shared && chmod 0700 /var/lib/herald
WORKDIR /opt/herald
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/build build
COPY package.json ./
COPY deploy/docker/entrypoint.sh deploy/docker/seed-publish.sh deploy/docker/seed-demo.sh deploy/docker/init-shared.sh /usr/local/bin/
RUN ln -s /opt/herald/build/cli/heraldd.js /usr/local/bin/heraldd \
 && ln -s /opt/herald/build/cli/herald.js /usr/local/bin/herald \
 && chmod +x build/cli/heraldd.js build/cli/herald.js /usr/local/bin/entrypoint.sh /usr/local/bin/seed-publish.sh /usr/local/bin/seed-demo.sh /usr/local/bin/init-shared.sh
USER 10001:10001
ENV HERALD_DATA_DIR=/var/lib/herald HERALD_API_HOST=127.0.0.1 HERALD_METRICS_HOST=0.0.0.0
VOLUME /var/lib/herald
EXPOSE 4480 9480
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.HERALD_METRICS_PORT || 9480) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["entrypoint.sh"]
CMD ["start"]
