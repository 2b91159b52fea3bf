//! Binary sizes: "512MiB", "8GiB", "2TiB".
