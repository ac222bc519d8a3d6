# nxwatcher container image for users with Docker (CI builds the same image
# without a daemon: `make image`, deploy/image). Multi-stage: a static
# binary (CGO_ENABLED=0) on distroless/static, which carries CA certificates,
# tzdata and /etc/passwd, and runs as its nonroot user (65532).
#
#   docker build -t nxwatcher:latest .
#   docker run --rm -p 9090:9090 -v nxwatcher-data:/data nxwatcher:latest
# go1.27.3: the release toolchain (Makefile RELEASE_GOTOOLCHAIN; docs/security.md).
ARG GO_VERSION=1.27.3

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags="-s -w -X github.com/nx-watcher/nxwatcher/internal/version.Version=${VERSION}" \
      -o /out/nxwatcher ./cmd/nxwatcher \
 && install -d -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0-dev
LABEL org.opencontainers.image.title="nxwatcher" \
      org.opencontainers.image.source="https://github.com/nx-watcher/nxwatcher" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/nxwatcher /bin/nxwatcher
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
# serve: HTTP (every API, UI), Alertmanager port, OTLP gRPC/HTTP;
# agent: 9080; collector's own metrics: 8888.
EXPOSE 9090 9093 4317 4318 9080 8888
ENTRYPOINT ["/bin/nxwatcher"]
CMD ["serve", "--storage.path=/data"]
