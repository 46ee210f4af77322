# The `alisay` package: one Rust binary with the browser client (public/) and the templates
# (nginx/, coturn/, src/render/units/) embedded at compile time.
#
#   pkgs.callPackage ./nixos/package.nix { }
#
# module.nix uses it as the default of `services.alisay.package`.
{ lib, rustPlatform, rustc }:

let
  # The newest `rust-version` among the locked dependencies (tests/nix/check.sh keeps this in
  # step with Cargo.lock). NixOS 25.05 ships rustc 1.86, which is too old; 25.11 is new enough.
  msrv = "1.88";
  # The compiler the package is built with: nixpkgs' default `rustc`, the one its default
  # rustPlatform uses. (`rustPlatform.rust.rustc` printed a deprecation warning at every
  # evaluation; pass another `rustc` together with another `rustPlatform` to change both.)
  rustcVersion = rustc.version;

  # Only what the crate is built from, so that editing docs, tests or the NixOS files does not
  # rebuild the package. `lib.fileset` fails loudly if one of these paths disappears.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../public
      (lib.fileset.fileFilter (file: file.hasExt "j2") ../nginx)
      (lib.fileset.fileFilter (file: file.hasExt "j2") ../coturn)
    ];
  };
in
assert lib.assertMsg (lib.versionAtLeast rustcVersion msrv)
  "alisay needs rustc >= ${msrv}, but this nixpkgs has ${rustcVersion}; use NixOS 25.11 or newer";
rustPlatform.buildRustPackage {
  pname = "alisay";
  inherit ((lib.importTOML ../Cargo.toml).package) version;
  inherit src;

  # Every dependency comes from crates.io and is pinned by Cargo.lock: no hashes to update.
  cargoLock.lockFile = ../Cargo.lock;

  # The unit tests only. The integration tests in tests/ start nginx, coturn and Chromium,
  # which the build sandbox does not have; `bash scripts/test.sh` runs them.
  cargoTestFlags = [ "--lib" ];

  meta = {
    description = "Self-hosted two-person WebRTC call appliance: signaling server, browser client and host renderer";
    longDescription = ''
      Alisay Call serves a browser client and a signaling WebSocket for two-person video
      calls, relayed through the host's own TURN server, and renders the Nginx site, the
      coturn config and the systemd units of a deployment from one YAML file.
    '';
    license = lib.licenses.mit;
    mainProgram = "alisay";
    platforms = lib.platforms.linux;
  };
}
