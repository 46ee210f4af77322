# The smallest settings a NixOS host can have (a development host without TURN), with or
# without nixos/defaults.nix under them. tests/nix/check.sh compares `alisay check` of both:
# with nothing set by the administrator, every default the module declares is in play, so
# any default that differs from alisay's own shows up in the diff.
{ binary, turnserver, nft, typedDefaults ? true }:
let
  own = {
    mode = "development";
    public_origin = "http://127.0.0.1:8787";
  };
in
(import ../../nixos/settings.nix {
  settings = (if typedDefaults then import ../../nixos/defaults.nix else { }) // own;
  inherit binary turnserver nft;
  turnSecretFile = null;
}).settings
