# NixOS module `services.alisay`: Alisay Call on a NixOS host, driven by the same alisay.yaml
# schema and producing the same files as any other host (SPEC.md §8-§9, docs/deploy.md).
#
#   imports = [ ./alisay/nixos/module.nix ];
#   services.alisay = { enable = true; settings.public_origin = "https://call.example.org"; ... };
#
# How the pieces fit:
# - `settings` is alisay.yaml as an RFC 42 free-form attribute set; settings.nix adds the keys
#   the module owns (binary paths, the config path, the TURN secret's path).
# - At build time `alisay check` validates the YAML and `alisay render` writes the Nginx site,
#   the coturn config and both systemd units (render.sh). An invalid config fails the build,
#   so `nixos-rebuild` stops before anything on the host is switched.
# - The rendered units are installed unchanged; the module adds only what NixOS needs around
#   them (wantedBy, restart triggers), which NixOS writes as a drop-in.
# - The rendered Nginx site is included into the host's nginx; the rendered coturn config is
#   what the app's own `alisay-coturn.service` runs. nixpkgs' `services.coturn` is left alone.
# - The rendered nftables table (`nftables/alisay-coturn.nft`) goes to /etc/alisay; the coturn
#   unit loads it at every start with nixpkgs' `nft` and deletes it when it stops, so coturn
#   reaches the host's own addresses only on its relay ports. The host's own firewall
#   (networking.firewall / networking.nftables) is not touched.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption types literalExpression optional optionals;

  cfg = config.services.alisay;
  s = cfg.settings;
  format = pkgs.formats.yaml { };
  defaults = import ./defaults.nix;

  effective = import ./settings.nix {
    inherit (cfg) settings turnSecretFile;
    binary = "${cfg.package}/bin/alisay";
    turnserver = "${cfg.coturn.package}/bin/turnserver";
    nft = "${pkgs.nftables}/bin/nft";
  };
  # /etc/alisay/alisay.yaml, a link to the YAML's store path (environment.etc below).
  inherit (effective) configPath;
  # /etc/alisay/alisay-coturn.nft: the rendered nftables table alisay-coturn.service loads at
  # every start (turn.host_firewall, on unless the settings turn it off).
  inherit (effective) nftPath;
  hostFirewall = s.turn.host_firewall or true;

  configFile = format.generate "alisay.yaml" effective.settings;

  # `alisay check` prints the effective configuration with secrets redacted; a config it
  # refuses (exit 64, every problem with its key path) fails this build and so the system's.
  checkedConfig = pkgs.runCommand "alisay-config-checked"
    { nativeBuildInputs = [ cfg.package ]; }
    ''
      alisay check --config ${configFile} > $out
    '';

  nftTable = "${rendered}/share/alisay/nftables/alisay-coturn.nft";

  units = [ "alisay.service" ] ++ optional cfg.coturn.enable "alisay-coturn.service";

  # The same files `alisay render` writes on an Ansible host, plus the units NixOS installs.
  rendered = pkgs.runCommand "alisay-rendered"
    {
      nativeBuildInputs = [ cfg.package ];
      # For tests and inspection: `config.services.alisay.rendered.checkedConfig` etc.
      passthru = { inherit configFile checkedConfig; };
    }
    ''
      bash ${./render.sh} ${configFile} $out ${lib.escapeShellArgs units}
      # What was checked (secrets redacted), for auditors; the link also makes the check
      # derivation above a dependency of every system that uses this one.
      ln -s ${checkedConfig} $out/share/alisay-effective-config.yaml
    '';

  # The host name of public_origin (`https://call.example.org:8443` -> `call.example.org`);
  # the rendered site defaults `nginx.server_name` to it in the same way.
  originHost =
    let m = builtins.match "https?://([^/:]+)(:[0-9]+)?/?" s.public_origin;
    in if m == null then "" else builtins.head m;
  serverName = if s.nginx.server_name != "" then s.nginx.server_name else originHost;
  acmeDirectory = "/var/lib/acme/${serverName}";

  # NixOS 25.11 reworked the ACME units (nixpkgs PR #422076): `acme-<cert>.service` now makes
  # the self-signed placeholder and `acme-order-renew-<cert>.service` orders the certificate.
  # Before, `acme-selfsigned-<cert>` made the placeholder and `acme-<cert>` ordered. nginx
  # must start after the placeholder exists and before the order (HTTP-01 needs it).
  newAcmeUnits = lib.versionAtLeast lib.trivial.release "25.11";
  # coturn serves TURN over TLS with the site's ACME certificate.
  coturnUsesAcme = cfg.coturn.enable && cfg.nginx.enableACME
    && s.turn.tls_cert != null && lib.hasPrefix "${acmeDirectory}/" s.turn.tls_cert;

  # A sub-table of alisay.yaml: free-form, with typed options for the keys the module reads.
  section = description: options: mkOption {
    type = types.submodule { freeformType = format.type; inherit options; };
    default = { };
    inherit description;
  };

  enableOption = description: mkOption {
    type = types.bool;
    default = false;
    example = true;
    inherit description;
  };

  port = default: description: mkOption {
    type = types.port;
    inherit default description;
    example = default + 10000;
  };
in
{
  options.services.alisay = {
    enable = lib.mkEnableOption "Alisay Call, a self-hosted two-person video call appliance";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./nixos/package.nix { }";
      example = literalExpression "pkgs.alisay";
      description = ''
        The `alisay` package. nixpkgs does not carry it, so the default builds this checkout
        (nixos/package.nix, dependencies pinned by Cargo.lock). The same binary validates and
        renders the configuration at build time, so a config is always checked by the
        version that will run it.
      '';
    };

    settings = mkOption {
      type = types.submodule {
        freeformType = format.type;
        options = {
          mode = mkOption {
            type = types.enum [ "production" "development" ];
            default = defaults.mode;
            example = "development";
            description = ''
              `production` makes `alisay check` (and so the build) refuse unsafe settings:
              an `http://` origin, open rooms, missing TURN, the credentials test endpoint.
              Keep it unless the host is a local test machine.
            '';
          };

          public_origin = mkOption {
            type = types.str;
            example = "https://call.example.org";
            description = ''
              The origin callers open (`scheme://host[:port]`, no path). Invite links are
              built from it, it is always an allowed WebSocket origin, and its host is the
              default Nginx `server_name` and the name of the ACME certificate
              ({option}`services.alisay.nginx.enableACME`).
            '';
          };

          server = section "The `alisay serve` process (alisay.yaml `server:`)." {
            listen = mkOption {
              type = types.str;
              default = defaults.server.listen;
              example = "127.0.0.1:9000";
              description = ''
                Address and port of `alisay serve`. Keep it on loopback: nginx proxies to it,
                the rendered unit then firewalls the process to loopback
                (`IPAddressAllow=localhost`), and {option}`services.alisay.openFirewall`
                never opens it.
              '';
            };
          };

          nginx = section "The Nginx site (alisay.yaml `nginx:`)." {
            server_name = mkOption {
              type = types.str;
              default = defaults.nginx.server_name;
              example = "call.example.org";
              description = ''
                `server_name` of the site. Empty means the host of `public_origin`, which
                is also the ACME certificate's name.
              '';
            };
            http_port = port defaults.nginx.http_port ''
              Port of the HTTP server block (ACME http-01 passthrough, redirect to HTTPS).
              Opened by {option}`services.alisay.openFirewall` when
              {option}`services.alisay.nginx.enable` is set.
            '';
            https_port = port defaults.nginx.https_port ''
              Port of the HTTPS site. Opened by {option}`services.alisay.openFirewall` when
              {option}`services.alisay.nginx.enable` is set.
            '';
            tls_cert = mkOption {
              # A string, not types.path: a path literal would copy the file into the
              # world-readable Nix store.
              type = types.nullOr types.str;
              default = if cfg.nginx.enableACME then "${acmeDirectory}/fullchain.pem" else defaults.nginx.tls_cert;
              defaultText = literalExpression ''
                if config.services.alisay.nginx.enableACME
                then "/var/lib/acme/<server name>/fullchain.pem"
                else null
              '';
              example = "/var/lib/acme/call.example.org/fullchain.pem";
              description = ''
                Certificate chain (PEM) of the site, read by the `nginx` user. Required with
                {option}`services.alisay.nginx.enable` unless
                {option}`services.alisay.nginx.enableACME` provides it.
              '';
            };
            tls_key = mkOption {
              type = types.nullOr types.str;
              default = if cfg.nginx.enableACME then "${acmeDirectory}/key.pem" else defaults.nginx.tls_key;
              defaultText = literalExpression ''
                if config.services.alisay.nginx.enableACME
                then "/var/lib/acme/<server name>/key.pem"
                else null
              '';
              example = "/var/lib/acme/call.example.org/key.pem";
              description = ''
                Private key (PEM) of {option}`services.alisay.settings.nginx.tls_cert`. A
                path outside the Nix store, readable by the `nginx` user only.
              '';
            };
            acme_root = mkOption {
              type = types.nullOr types.str;
              default = defaults.nginx.acme_root;
              example = null;
              description = ''
                Directory served at `/.well-known/acme-challenge/` on the HTTP port, the
                webroot of the ACME http-01 challenge. `null` drops that location.
              '';
            };
          };

          turn = section "TURN: issued credentials and the coturn instance (alisay.yaml `turn:`)." {
            urls = mkOption {
              type = types.listOf types.str;
              default = defaults.turn.urls;
              example = [
                "turn:call.example.org:3478?transport=udp"
                "turns:call.example.org:5349?transport=tcp"
              ];
              description = ''
                `turn:`/`turns:` URLs handed to browsers with fresh credentials. Browsers
                reach the relay only through these, so
                {option}`services.alisay.coturn.enable` requires at least one.
              '';
            };
            listening_port = port defaults.turn.listening_port ''
              coturn's TURN port (UDP and TCP). Opened by
              {option}`services.alisay.openFirewall` when
              {option}`services.alisay.coturn.enable` is set.
            '';
            tls_listening_port = port defaults.turn.tls_listening_port ''
              coturn's TURN-over-TLS port (TCP), used when `turn.tls_cert` is set. Opened by
              {option}`services.alisay.openFirewall` in that case.
            '';
            min_port = port defaults.turn.min_port ''
              First UDP port of coturn's relay range. The range is opened by
              {option}`services.alisay.openFirewall`.
            '';
            max_port = port defaults.turn.max_port ''
              Last UDP port of coturn's relay range (two callers need few ports).
            '';
            tls_cert = mkOption {
              type = types.nullOr types.str;
              default = defaults.turn.tls_cert;
              example = "/var/lib/acme/call.example.org/fullchain.pem";
              description = ''
                Certificate chain for TURN over TLS (`turns:` URLs). The coturn unit loads
                it with `LoadCredential=`, so it may stay readable by root only. Set
                `turn.tls_key` with it.
              '';
            };
          };
        };
      };
      default = { };
      example = literalExpression ''
        {
          public_origin = "https://call.example.org";
          turn = {
            urls = [ "turn:call.example.org:3478?transport=udp" ];
            external_ip = "203.0.113.10";
            relay_ips = [ "10.0.0.10" ];
          };
          rooms.max_active = 50;
        }
      '';
      description = ''
        The contents of alisay.yaml, as documented in docs/config.md: every key may be set
        here, and unset keys keep alisay's defaults. The module sets `paths.binary`,
        `paths.turnserver`, `paths.nft`, `paths.config`, `paths.coturn_nft` and
        `turn.secret_file` itself; setting them here is an error. The file is checked with
        `alisay check` when the system is built.

        Secrets never belong here (this ends up in the world-readable Nix store): the TURN
        secret goes in {option}`services.alisay.turnSecretFile`. Allowlisted room ids
        (`rooms.allowlist`) admit whoever knows them; prefer generated rooms on a shared
        machine.
      '';
    };

    turnSecretFile = mkOption {
      # A string, not types.path: a path literal (./secret) would be copied into the
      # world-readable Nix store; the type refuses it instead.
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/alisay-turn";
      description = ''
        File holding the TURN shared secret (coturn `static-auth-secret`): one line of
        printable ASCII, e.g. from `openssl rand -hex 32`. Keep it outside the Nix store,
        owned by root with mode 0600 (by hand, sops-nix or agenix). The module writes this
        path into `settings.turn.secret_file`; both units load it with systemd's
        `LoadCredential=`, so the services read a private copy and the file itself never
        needs to be readable by them. Required in production mode and whenever
        `settings.turn.urls` is set.
      '';
    };

    nginx = {
      enable = enableOption ''
        Include the Nginx site `alisay render` wrote (TLS, WebSocket proxy to
        {option}`services.alisay.settings.server.listen`, ACME http-01 passthrough, rate limit
        on `POST /rooms`) into the host's {option}`services.nginx`, and enable nginx. Browsers
        need an HTTPS origin for camera and microphone, so a public deployment wants this (or
        another TLS proxy you configure yourself). Every http-level name the site defines
        starts with `alisay_`, so it coexists with the host's other sites.
      '';
      enableACME = enableOption ''
        Get the site's certificate from {option}`security.acme` (Let's Encrypt by default),
        validated over HTTP-01 through the site's own ACME location
        ({option}`services.alisay.settings.nginx.acme_root`), and make it the default of
        {option}`services.alisay.settings.nginx.tls_cert` and `tls_key`. Nginx starts on a
        self-signed placeholder and is reloaded when the real certificate arrives. You still
        set {option}`security.acme.acceptTerms` and {option}`security.acme.defaults.email`.
        If `settings.turn.tls_cert` points at the same certificate, `alisay-coturn` is
        ordered after it and restarted on renewal (ongoing relayed calls reconnect).
      '';
    };

    coturn = {
      enable = enableOption ''
        Run the application's own coturn instance, `alisay-coturn.service`, from the
        rendered configuration: TURN REST credentials with the shared secret injected at
        start (never in the store or a process argument), and every private, loopback,
        link-local and reserved range denied as a peer, so the relay cannot reach into the
        host's networks. Relay-only calls (the default mode) need a TURN server. This does not
        use nixpkgs' {option}`services.coturn`, which stays free for other uses on other
        ports.
      '';
      package = lib.mkPackageOption pkgs "coturn" {
        extraDescription = "Its `turnserver` runs as `alisay-coturn.service` (`paths.turnserver`).";
      };
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Open the ports the enabled parts need: `nginx.http_port` and `nginx.https_port`
        (TCP) with {option}`services.alisay.nginx.enable`; with
        {option}`services.alisay.coturn.enable`, `turn.listening_port` (UDP and TCP),
        `turn.tls_listening_port` (TCP, when `turn.tls_cert` is set) and the relay range
        `turn.min_port`-`turn.max_port` (UDP). The `alisay serve` port is never opened.
      '';
    };

    rendered = mkOption {
      type = types.package;
      readOnly = true;
      default = rendered;
      defaultText = lib.literalMD "the output of `alisay render` for {option}`services.alisay.settings`";
      description = ''
        What `alisay render` wrote for this host, for inspection (e.g. `nix-build '<nixpkgs/nixos>'
        -A config.services.alisay.rendered`): `share/alisay/{nginx,coturn,systemd}/` as on any
        other host, the installed units in `lib/systemd/system/`, and
        `share/alisay-effective-config.yaml`, the `alisay check` output.
      '';
    };
  };

  config = lib.mkIf cfg.enable (lib.mkMerge [
    {
      assertions = [
        {
          assertion = effective.conflicts == [ ];
          message = ''
            services.alisay.settings sets ${lib.concatStringsSep ", " effective.conflicts}, which
            the module owns: turn.secret_file comes from services.alisay.turnSecretFile,
            paths.binary and paths.turnserver from services.alisay.package and
            services.alisay.coturn.package, paths.nft from pkgs.nftables, paths.config is
            ${configPath} and paths.coturn_nft ${nftPath}. Remove them from
            services.alisay.settings.
          '';
        }
        {
          assertion = cfg.turnSecretFile != null
            -> lib.hasPrefix "/" cfg.turnSecretFile && !lib.hasPrefix builtins.storeDir cfg.turnSecretFile;
          message = ''
            services.alisay.turnSecretFile must be an absolute path outside the Nix store
            (the store is readable by every user), e.g. "/run/secrets/alisay-turn"; it is
            "${toString cfg.turnSecretFile}".
          '';
        }
        {
          assertion = s.mode == "production" -> cfg.turnSecretFile != null;
          message = ''
            services.alisay.settings.mode = "production" requires TURN, so
            services.alisay.turnSecretFile must name the file holding the shared secret.
          '';
        }
        {
          assertion = s.turn.urls != [ ] -> cfg.turnSecretFile != null;
          message = ''
            services.alisay.settings.turn.urls is set, so credentials must be issued:
            services.alisay.turnSecretFile must name the file holding the shared secret.
          '';
        }
        {
          assertion = cfg.coturn.enable -> s.turn.urls != [ ];
          message = ''
            services.alisay.coturn.enable requires services.alisay.settings.turn.urls:
            browsers find the relay only through those URLs.
          '';
        }
        {
          assertion = cfg.coturn.enable -> cfg.turnSecretFile != null;
          message = ''
            services.alisay.coturn.enable requires services.alisay.turnSecretFile (coturn
            checks the credentials alisay issues with that shared secret).
          '';
        }
        {
          assertion = cfg.coturn.enable && config.services.coturn.enable
            -> config.services.coturn.listening-port != s.turn.listening_port
            && config.services.coturn.tls-listening-port != s.turn.tls_listening_port;
          message = ''
            services.alisay.coturn.enable and services.coturn.enable are both set and use the
            same TURN ports (services.alisay.settings.turn.listening_port = ${toString s.turn.listening_port},
            tls_listening_port = ${toString s.turn.tls_listening_port}): give
            services.alisay.settings.turn other ports. The module never changes services.coturn.
          '';
        }
        {
          assertion = cfg.nginx.enable -> s.nginx.tls_cert != null && s.nginx.tls_key != null;
          message = ''
            services.alisay.nginx.enable requires services.alisay.settings.nginx.tls_cert and
            services.alisay.settings.nginx.tls_key, or services.alisay.nginx.enableACME = true
            to get them from security.acme.
          '';
        }
        {
          # `alisay check` refuses the same at build time; this says it at evaluation, before
          # anything is built, in the options' own names.
          assertion = s.mode == "production" -> s.nginx.tls_cert != null && s.nginx.tls_key != null;
          message = ''
            services.alisay.settings.mode = "production" requires the site's certificate:
            set services.alisay.settings.nginx.tls_cert and services.alisay.settings.nginx.tls_key,
            or services.alisay.nginx.enableACME = true to get them from security.acme.
          '';
        }
        {
          assertion = cfg.nginx.enableACME -> cfg.nginx.enable;
          message = ''
            services.alisay.nginx.enableACME requires services.alisay.nginx.enable: the
            certificate is validated through the site's ACME location.
          '';
        }
        {
          assertion = cfg.nginx.enableACME -> s.nginx.acme_root != null && serverName != "";
          message = ''
            services.alisay.nginx.enableACME requires services.alisay.settings.nginx.acme_root
            (the http-01 webroot) and a server name (services.alisay.settings.nginx.server_name
            or the host of services.alisay.settings.public_origin).
          '';
        }
      ];

      # A root-only copy (0600), as on every other host: the units read it through
      # LoadCredential= (as root). The store path it comes from is world-readable, which is why
      # no secret may be in `settings` (see the option's description).
      environment.etc.${lib.removePrefix "/etc/" configPath} = {
        source = configFile;
        mode = "0600";
      };
      # `alisay check --config /etc/alisay/alisay.yaml` and `alisay room new` for the admin.
      environment.systemPackages = [ cfg.package ];

      # The rendered units, installed as they are (systemd.packages), not re-declared in
      # `systemd.services.<name>.serviceConfig`: reading the rendered text back into Nix
      # would need import-from-derivation (a build during evaluation), and re-declaring the
      # settings by hand would let NixOS and Ansible hosts drift apart. NixOS ignores the
      # units' [Install] sections, so `wantedBy` goes below; it and the restart triggers
      # land in a drop-in (alisay.service.d/overrides.conf) on top of the rendered unit.
      # ExecStart= is the renderer's, so utils.escapeSystemdExecArgs has nothing to escape
      # here: the renderer only accepts paths of [A-Za-z0-9._+@/-].
      systemd.packages = [ rendered ];
      systemd.services.alisay = {
        wantedBy = [ "multi-user.target" ];
        # The unit reads /etc/alisay/alisay.yaml, whose path never changes: restart when
        # its content does.
        restartTriggers = [ configFile ];
      };
    }

    (lib.mkIf cfg.coturn.enable {
      systemd.services.alisay-coturn = {
        wantedBy = [ "multi-user.target" ];
        # ExecStartPre= renders coturn's runtime config from the YAML at each start, and
        # loads the nftables table from /etc (a fixed path): restart when either changes.
        restartTriggers = [ configFile ] ++ optional hostFirewall nftTable;
      };
    })

    (lib.mkIf (cfg.coturn.enable && hostFirewall) {
      # Its own table only (`inet alisay_coturn`), loaded and deleted by the unit. A ruleset
      # reloaded with `flush ruleset` (networking.nftables.flushRuleset, the default with
      # networking.nftables.enable) removes it: a reload of nftables.service propagates to
      # alisay-coturn, whose reload loads the table again (the same drop-in as the Ansible
      # role's alisay-nftables.conf); see docs/deploy.md, "The host firewall".
      environment.etc.${lib.removePrefix "/etc/" nftPath}.source = nftTable;
      systemd.services.alisay-coturn = {
        unitConfig.ReloadPropagatedFrom = [ "nftables.service" ];
        serviceConfig.ExecReload = "+${pkgs.nftables}/bin/nft -f ${nftPath}";
      };
    })

    (lib.mkIf cfg.nginx.enable {
      services.nginx = {
        enable = true;
        # Reload, not restart, when the site changes: other sites on this nginx keep their
        # connections (nginx -t runs first, in ExecReload=).
        enableReload = lib.mkDefault true;
        appendHttpConfig = ''
          # Alisay Call (services.alisay.nginx.enable): the site `alisay render` wrote.
          include ${rendered}/share/alisay/nginx/alisay.conf;
        '';
      };
    })

    (lib.mkIf cfg.nginx.enableACME {
      security.acme.certs.${serverName} = {
        webroot = s.nginx.acme_root;
        # nginx reads the key; the group is what lets it (nixpkgs' usual arrangement).
        group = lib.mkDefault config.services.nginx.group;
        reloadServices = [ "nginx.service" ] ++ optional coturnUsesAcme "alisay-coturn.service";
      };
      # The ACME client (user acme) writes challenges, nginx (its group) serves them.
      systemd.tmpfiles.rules = [
        "d ${s.nginx.acme_root} 0750 acme ${config.services.nginx.group} - -"
      ];
      systemd.services = {
        nginx =
          if newAcmeUnits then {
            wants = [ "acme-${serverName}.service" ];
            after = [ "acme-${serverName}.service" ];
          } else {
            wants = [ "acme-finished-${serverName}.target" ];
            after = [ "acme-selfsigned-${serverName}.service" ];
            before = [ "acme-${serverName}.service" ];
          };
      } // lib.optionalAttrs newAcmeUnits {
        "acme-order-renew-${serverName}".after = [ "nginx.service" ];
        # NixOS 25.11's acme-<cert>.service (ProtectSystem=strict) creates the webroot's
        # .well-known/acme-challenge and changes its group, but lists only /var/lib/acme in
        # ReadWritePaths: with our webroot under /var/lib/alisay it failed on a read-only file
        # system (nixpkgs PR #473073 adds the webroots, on master after 25.11 was released;
        # acme-order-renew-<cert> always had them). A path listed twice is mounted once.
        "acme-${serverName}".serviceConfig.ReadWritePaths = [ s.nginx.acme_root ];
      } // lib.optionalAttrs coturnUsesAcme {
        # LoadCredential= needs the files at start: wait for the placeholder (or the real
        # certificate); a renewal restarts the unit (reloadServices above) to load the new one.
        alisay-coturn =
          if newAcmeUnits then {
            wants = [ "acme-${serverName}.service" ];
            after = [ "acme-${serverName}.service" ];
          } else {
            wants = [ "acme-finished-${serverName}.target" ];
            after = [ "acme-selfsigned-${serverName}.service" ];
          };
      };
    })

    (lib.mkIf cfg.openFirewall {
      networking.firewall = {
        allowedTCPPorts =
          optionals cfg.nginx.enable [ s.nginx.http_port s.nginx.https_port ]
          ++ optionals cfg.coturn.enable (
            [ s.turn.listening_port ]
            ++ optional (s.turn.tls_cert != null) s.turn.tls_listening_port
          );
        allowedUDPPorts = optionals cfg.coturn.enable [ s.turn.listening_port ];
        allowedUDPPortRanges = optionals cfg.coturn.enable [
          { from = s.turn.min_port; to = s.turn.max_port; }
        ];
      };
    })
  ]);
}
