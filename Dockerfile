# syntax=docker/dockerfile:1
# Chatter's image: build the bundle in one stage, run it from a slim Node image with nothing else.
# dist/server.js needs no node_modules, so the runtime stage holds Node and dist/ only
# (about 200 MB uncompressed, almost all of it the node:20-bookworm-slim base; dist/ is ~3 MB).

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-fund --no-audit
COPY build.mjs tsconfig.json ./
COPY public ./public
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=3000 HOST=0.0.0.0
WORKDIR /app
# Owned by root and read-only to the process: the server never writes to its own files.
COPY --from=build /src/dist ./dist
USER node
EXPOSE 3000
# fetch is built into Node 20, so the check needs no curl or wget in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The server drains on SIGTERM (sockets closed with 1012, exit within 10 s).
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
