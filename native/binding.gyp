# ztunnel-ts native addon (capture.md §3-§6). Built offline by scripts/build-native.mjs
# (node-gyp rebuild --nodedir=<prefix of the running node>); output build/Release/ztunnel_native.node.
{
  "targets": [
    {
      "target_name": "ztunnel_native",
      "sources": ["src/ztunnel_native.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++20", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
