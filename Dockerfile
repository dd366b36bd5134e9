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
RUN groupadd --system herald && useradd --system --gid herald --home-dir /var/lib/herald herald \
 && mkdir -p /var/lib/herald && chown herald:herald /var/lib/herald
WORKDIR /opt/herald
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/build build
COPY package.json ./
COPY deploy/docker/entrypoint.sh deploy/docker/seed-publish.sh /usr/local/bin/
RUN ln -s /opt/herald/build/cli/heraldd.js /usr/local/bin/heraldd \
 && ln -s /opt/herald/build/cli/herald.js /usr/local/bin/herald \
 && chmod +x build/cli/heraldd.js build/cli/herald.js /usr/local/bin/entrypoint.sh /usr/local/bin/seed-publish.sh
USER herald
ENV HERALD_DATA_DIR=/var/lib/herald HERALD_API_HOST=127.0.0.1 HERALD_METRICS_HOST=0.0.0.0
VOLUME /var/lib/herald
EXPOSE 4480 9480
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.HERALD_METRICS_PORT || 9480) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["entrypoint.sh"]
CMD ["start"]
