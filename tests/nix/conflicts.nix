# Negative case of nixos/settings.nix: keys the module owns, set by the administrator anyway,
# are reported (module.nix turns the list into an assertion failure) and never silently
# replaced in the other direction. tests/nix/check.sh evaluates this with --strict --json and
# compares the result.
let
  result = import ../../nixos/settings.nix {
    settings = {
      public_origin = "https://call.example.org";
      paths = {
        binary = "/usr/local/bin/alisay";
        state_dir = "/var/lib/alisay";
      };
      turn = {
        secret_file = "/etc/alisay/turn-secret";
        urls = [ "turn:call.example.org:3478" ];
      };
    };
    binary = "/nix/store/00000000000000000000000000000000-alisay/bin/alisay";
    turnserver = "/nix/store/00000000000000000000000000000000-coturn/bin/turnserver";
    nft = "/nix/store/00000000000000000000000000000000-nftables/bin/nft";
    turnSecretFile = "/run/secrets/alisay-turn";
  };
in
{
  inherit (result) conflicts;
  # The owned keys win in the generated file; the administrator's other keys stay.
  binary = result.settings.paths.binary;
  secretFile = result.settings.turn.secret_file;
  stateDir = result.settings.paths.state_dir;
  urls = result.settings.turn.urls;
}
