# A NixOS host serving Alisay Call on https://call.example.org: the signaling server, its
# Nginx site with a Let's Encrypt certificate, the application's own coturn, and the firewall
# opened for exactly those. Copy it into your configuration (or import it) and adjust the
# names; nixos/README.md walks through it.
{ ... }:

{
  imports = [ ./module.nix ];

  services.alisay = {
    enable = true;
    settings = import ./example-settings.nix;
    # Create it once, before the first switch (never put the secret in a .nix file):
    #   install -d -m 0755 /etc/alisay
    #   (umask 077; openssl rand -hex 32 > /etc/alisay/turn-secret)
    turnSecretFile = "/etc/alisay/turn-secret";
    nginx = {
      enable = true;
      enableACME = true;
    };
    coturn.enable = true;
    openFirewall = true;
  };

  # Let's Encrypt: the site's certificate is validated over HTTP through the site itself.
  security.acme = {
    acceptTerms = true;
    defaults.email = "admin@example.org";
  };
}
