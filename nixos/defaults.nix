# Defaults of the `services.alisay.settings` keys that module.nix declares as typed options,
# because the module itself reads them (firewall ports, assertions, ACME). They are alisay's
# own defaults (src/config/schema.rs), repeated here; tests/nix/check.sh proves that they
# have not drifted: the example config gives the same `alisay check` output with and without
# them. Every other key of alisay.yaml stays free-form and keeps alisay's default when unset.
#
# Pure data (no nixpkgs `lib`), so CI can evaluate it with a bare `nix-instantiate`.
{
  mode = "production";
  server = {
    listen = "127.0.0.1:8787";
  };
  nginx = {
    server_name = "";
    http_port = 80;
    https_port = 443;
    tls_cert = null;
    tls_key = null;
    acme_root = "/var/lib/alisay/acme";
  };
  turn = {
    urls = [ ];
    listening_port = 3478;
    tls_listening_port = 5349;
    min_port = 49160;
    max_port = 49200;
    tls_cert = null;
  };
}
