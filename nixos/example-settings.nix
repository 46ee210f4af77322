# `services.alisay.settings` of the example host (example-configuration.nix): alisay.yaml
# written in Nix. Every key is documented in docs/config.md; keys left out keep alisay's
# defaults. No secrets here: this ends up in the world-readable Nix store.
#
# Kept in its own file, as plain data, so that tests/nix/check.sh can evaluate it without
# nixpkgs and feed it to `alisay check` and `alisay render`.
{
  # The address callers open; invite links are https://call.example.org/#<token>.
  public_origin = "https://call.example.org";

  rooms = {
    # Active rooms plus pending reservations, at most: a small host for a few families.
    max_active = 50;
    generated.per_ip = 5;
  };

  turn = {
    # What browsers get (with fresh credentials) after joining a room. TURN over TLS on 5349
    # gets through most firewalls; UDP is the fastest path.
    urls = [
      "turns:call.example.org:5349?transport=tcp"
      "turn:call.example.org:3478?transport=udp"
      "turn:call.example.org:3478?transport=tcp"
    ];
    # The ACME certificate of the site (nginx.enableACME) serves TURN over TLS too. The
    # coturn unit loads it with LoadCredential= at start; restart alisay-coturn after a
    # renewal to pick up the new one.
    tls_cert = "/var/lib/acme/call.example.org/fullchain.pem";
    tls_key = "/var/lib/acme/call.example.org/key.pem";
    # Behind 1:1 NAT (most cloud VMs), the public address peers must reach and the
    # VM's own private address it maps to (docs/deploy.md, "Behind 1:1 NAT"):
    # external_ip = "203.0.113.10";
    # relay_ips = [ "10.0.0.10" ];
  };

  nginx = {
    # What services.alisay.nginx.enableACME provides anyway; written out so that this file
    # alone tells an auditor where the site's key lives.
    tls_cert = "/var/lib/acme/call.example.org/fullchain.pem";
    tls_key = "/var/lib/acme/call.example.org/key.pem";
  };

  logging.format = "text";
}
