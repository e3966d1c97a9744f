# Postern: one image for every component. Node 24 runs the TypeScript sources directly (type stripping), so
# there is no build stage; the chart picks the entry point (node services/<svc>/main.ts | node operator/main.ts).
# NODE_IMAGE lets a build substitute another Node 24 base (the cluster test tier builds a local stand-in under
# the same name, since it cannot pull); real builds keep the default.
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; none of them needs an install script.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY services ./services
COPY operator ./operator
COPY crds ./crds
# Numeric UID/GID (the image's "node" user) so Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 2525 2587 2465 9090
ENTRYPOINT ["node"]
CMD ["bin/postern.ts"]
