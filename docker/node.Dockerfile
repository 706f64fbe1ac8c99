# zdb-node (and zdbctl) image. Build from the repository root:
#   docker build -f docker/node.Dockerfile -t zdb-node .
FROM rust:1-bookworm AS build
# protoc for the gRPC protos, clang/libclang for RocksDB's bindings.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p zdb-node -p zdbctl \
 && mkdir -p /out \
 && cp target/release/zdb-node target/release/zdbctl /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 zdb \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin zdb \
 && mkdir -p /var/lib/zdb && chown zdb:zdb /var/lib/zdb
COPY --from=build /out/zdb-node /out/zdbctl /usr/local/bin/
USER 10001:10001
# 7700: gRPC (clients and peers); 7701: /metrics and /healthz.
EXPOSE 7700 7701
# The operator starts nodes through the entry script of its ConfigMap; run
# by hand: zdb-node --id 1 --peers 1=127.0.0.1:7700 --data /var/lib/zdb/data
ENTRYPOINT ["zdb-node"]
