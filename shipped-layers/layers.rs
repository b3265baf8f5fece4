// Made by scripts/update-shipped-layers.sh from the source's base and zoneinfo trees; do not edit.
// src/image/shipped.rs checks every blob against its digest before it is used.
const SHIPPED: &[Shipped] = &[
    Shipped {
        // base
        compression: Compression::Gzip,
        inputs: "d729a1dc7578ab21425dac956689176e97696b71b5fa679b47399544c565ab05",
        digest: "sha256:9dc08f6081f5adc94d7ce3353020e16d3005c724d0f2aa4653690a787b7b695f",
        diff_id: "sha256:aa41900cee54ce57c8075ae69dd3b9e304fe3793faf8a5265f4f2b49ca641868",
        uncompressed_size: 233984,
        bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/shipped-layers/base.tar.gz")),
    },
    Shipped {
        // base
        compression: Compression::Zstd,
        inputs: "54f8a8df7ab53b97c12f392e32178079afed873f25ff439cd2d83bf9642d31df",
        digest: "sha256:b61a7a780a8d957ac110b39eb8ed4d265e8d19ec6e58f038db2ffed3c28f4378",
        diff_id: "sha256:aa41900cee54ce57c8075ae69dd3b9e304fe3793faf8a5265f4f2b49ca641868",
        uncompressed_size: 233984,
        bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/shipped-layers/base.tar.zst")),
    },
    Shipped {
        // zoneinfo
        compression: Compression::Gzip,
        inputs: "5d7c9491f3b7a6096139f017cd1a995f651dbff96d67c83abe19cb9ee159290b",
        digest: "sha256:f3fa78ce1276e62011605fa0acd8795db57363104e1c93638ff8f2bf4a2b9956",
        diff_id: "sha256:402a8388bcb6ba616973c8db2640366e31779330b50a7011a527ce12561b8ac1",
        uncompressed_size: 782848,
        bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/shipped-layers/zoneinfo.tar.gz")),
    },
    Shipped {
        // zoneinfo
        compression: Compression::Zstd,
        inputs: "251bce5f5b20117b7dbb41b1e571b8edf484c5d607046150bf6e87e7adf13c6b",
        digest: "sha256:8ae0e9b7807479a1c66bc1dd92ec5364134a9029c5dada300034395f5b1e5ba8",
        diff_id: "sha256:402a8388bcb6ba616973c8db2640366e31779330b50a7011a527ce12561b8ac1",
        uncompressed_size: 782848,
        bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/shipped-layers/zoneinfo.tar.zst")),
    },
];
