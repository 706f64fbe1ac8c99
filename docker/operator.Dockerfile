# zdb-operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t zdb-operator .
FROM rust:1-bookworm AS build
# protoc for the gRPC protos the admin client uses; clang for crates with C parts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p zdb-operator --bin zdb-operator \
 && mkdir -p /out \
 && cp target/release/zdb-operator /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/zdb-operator /usr/local/bin/zdb-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["zdb-operator"]
