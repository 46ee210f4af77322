# The example host's alisay.yaml as nixos/module.nix generates it, evaluated by a bare Nix 2.8
# (no nixpkgs, no NixOS module system). tests/nix/check.sh runs
#
#   nix-instantiate --eval --strict --json tests/nix/example.nix \
#     --argstr binary /nix/store/...-alisay/bin/alisay --argstr turnserver /nix/store/.../turnserver \
#     --argstr nft /nix/store/...-nftables/bin/nft
#
# and feeds the JSON (through remarshal, as pkgs.formats.yaml does) to `alisay check` and
# nixos/render.sh.
#
# Real, unchanged: `services.alisay` of nixos/example-configuration.nix (with
# nixos/example-settings.nix), nixos/settings.nix (the function module.nix calls) and
# nixos/defaults.nix (the defaults of the module's typed options).
# Stand-in for the module system: `update` below puts the administrator's values over the typed
# defaults, which is what the module system does for these declared options. It knows nothing
# of option types, mkDefault/mkForce priorities or the computed ACME defaults of
# nginx.tls_cert/tls_key (the example sets those explicitly).
{
  # What the module passes as "${cfg.package}/bin/alisay", "${coturn}/bin/turnserver" and
  # "${pkgs.nftables}/bin/nft".
  binary
, turnserver
, nft
, # false: leave out nixos/defaults.nix (to prove those defaults are alisay's own).
  typedDefaults ? true
}:
let
  host = (import ../../nixos/example-configuration.nix { }).services.alisay;

  update = lhs: rhs:
    lhs // builtins.mapAttrs
      (name: value:
        if builtins.isAttrs value && builtins.isAttrs (lhs.${name} or null)
        then update lhs.${name} value
        else value)
      rhs;

  settings =
    if typedDefaults
    then update (import ../../nixos/defaults.nix) host.settings
    else host.settings;
in
(import ../../nixos/settings.nix {
  inherit settings binary turnserver nft;
  inherit (host) turnSecretFile;
}).settings
