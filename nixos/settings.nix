# The effective alisay.yaml of a NixOS host: the administrator's `services.alisay.settings`
# with the keys the module owns put on top. module.nix calls this function; tests/nix/check.sh
# calls the very same function on the example settings and runs `alisay check` and
# `alisay render` on the result. Pure Nix (builtins only, no nixpkgs `lib`) so that CI can
# evaluate it with a bare `nix-instantiate`.
#
# Returns `{ settings; conflicts; configPath; nftPath; }`: `conflicts` lists the owned keys (dotted,
# e.g. "turn.secret_file") that the administrator set anyway; module.nix turns a non-empty
# list into an assertion failure instead of silently overriding them.
{
  # `services.alisay.settings`, after the module system merged it (typed defaults included).
  settings
, # Absolute path of the `alisay` binary: "${package}/bin/alisay".
  binary
, # Absolute path of coturn's `turnserver`: "${coturn}/bin/turnserver".
  turnserver
, # Absolute path of `nft`: "${pkgs.nftables}/bin/nft" (loads coturn's table, turn.host_firewall).
  nft
, # `services.alisay.turnSecretFile`: a path outside the store, or null (no TURN).
  turnSecretFile
}:
let
  # Where module.nix installs the YAML (environment.etc); the rendered units pass it to
  # `--config`. Not the YAML's store path: the file names its own location in
  # `paths.config`, and a file cannot contain its own store hash.
  configPath = "/etc/alisay/alisay.yaml";
  # Where module.nix installs the rendered nftables/alisay-coturn.nft (environment.etc), which
  # alisay-coturn.service loads at every start. Not a store path, for the same reason.
  nftPath = "/etc/alisay/alisay-coturn.nft";

  # Keys the module owns, as attribute paths. The rendered units read `paths.*` (ExecStart=,
  # --config) and load `turn.secret_file` with LoadCredential=.
  owned = {
    paths = { inherit binary turnserver nft; config = configPath; coturn_nft = nftPath; };
    turn = { secret_file = turnSecretFile; };
  };
  ownedPaths = [
    [ "paths" "binary" ]
    [ "paths" "turnserver" ]
    [ "paths" "config" ]
    [ "paths" "nft" ]
    [ "paths" "coturn_nft" ]
    [ "turn" "secret_file" ]
  ];

  # Whether `set` has the attribute path `path`.
  hasPath = path: set:
    path == [ ]
    || (builtins.isAttrs set
    && builtins.hasAttr (builtins.head path) set
    && hasPath (builtins.tail path) (builtins.getAttr (builtins.head path) set));

  # `lhs` with `rhs` on top, merging nested attribute sets (lib.recursiveUpdate).
  update = lhs: rhs:
    lhs // builtins.mapAttrs
      (name: value:
        if builtins.isAttrs value && builtins.isAttrs (lhs.${name} or null)
        then update lhs.${name} value
        else value)
      rhs;
in
{
  inherit configPath nftPath;
  settings = update settings owned;
  conflicts = map (builtins.concatStringsSep ".")
    (builtins.filter (path: hasPath path settings) ownedPaths);
}
