# syntax=docker/dockerfile:1.7
# promptmesh: ONE image for the four services; the container's SERVICE variable picks which one
# runs (router | templates | context | llm | all). Built by `pulumi up` (infra/pulumi/images.ts)
# or by hand: docker build -t promptmesh:dev .
#
# Stage 1 installs exactly what the lockfile says and runs `npm run build`, whose esbuild bundle
# (build/service.js, self-contained, with the SQL migrations in build/migrations/ and the console
# in build/console/) is all the
# runtime needs. Stage 2 is a slim Node runtime with that bundle only: no npm, no sources, no
# node_modules, running as a numeric non-root user.

ARG NODE_IMAGE=node:24.22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV CI=true NPM_CONFIG_UPDATE_NOTIFIER=false
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY . .
RUN npm run build && test -f build/service.js && test -d build/migrations && test -f build/console/index.html

FROM ${NODE_IMAGE} AS runtime
# npm and corepack are not needed at run time; fewer binaries, fewer CVEs to scan.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn* /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
COPY --from=build --chown=0:0 /src/build/ ./build/
# Memory: build/entrypoint.sh (scripts/image-entrypoint.sh) sizes V8's heap from the container's
# memory limit (MEMORY_LIMIT_MIB from the downward API, else the cgroup): 75% of it for the whole
# heap, so a 768Mi pod can use its memory and a 256Mi one still collects instead of growing
# (docs/bench.md). The semi-space is 8 MiB (V8's default is 16 on 64-bit): it keeps the young
# generation to 24 MiB, which with the tokenizer loaded holds SERVICE=all under 150 MB peak RSS
# in npm run bench (16 MiB measured ~10 MB more; 4 MiB or less promotes in-flight requests and
# costs both CPU and old-space growth); two malloc
# arenas and a fixed mmap threshold make glibc give freed memory back (the tokenizer's one-time
# load and V8's compiler scratch space would otherwise stay resident). Measured peak RSS of
# SERVICE=all under the benchmark's load, with the 112 MiB old space npm run bench still sets:
# ~145 MB instead of ~290 MB.
ENV NODE_ENV=production \
    SERVICE=all \
    PORT=8080 \
    HOST=0.0.0.0 \
    NODE_OPTIONS="--max-semi-space-size=8" \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=65536 \
    MALLOC_TRIM_THRESHOLD_=131072
# Numeric, so Kubernetes' runAsNonRoot can verify it; the Deployments run as the same uid.
USER 10001:10001
EXPOSE 8080
# Liveness and readiness come from Kubernetes probes (/healthz, /readyz); no HEALTHCHECK here.
ENTRYPOINT ["/bin/sh", "build/entrypoint.sh"]
