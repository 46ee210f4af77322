# NixOS VM test of `services.alisay` (pkgs.testers.runNixOSTest), for a machine with Nix,
# KVM and NixOS 25.11 or newer on NIX_PATH:
#
#   nix-build nixos/test.nix                       # run it
#   nix-build nixos/test.nix -A driverInteractive  # then ./result/bin/nixos-test-driver
#
# `server` runs the module as an operator would (its nginx site next to another site, its own
# coturn, firewall opened); `client` is another machine on the test network. Before the VMs
# start, evaluation itself checks the module's assertions on bad configurations and builds a
# config that `alisay check` must refuse. (CI here cannot run this file: see nixos/README.md.)
{ pkgs ? import <nixpkgs> { } }:

let
  inherit (pkgs) lib;

  # A throwaway self-signed certificate for call.test. Test only: its key is in the store.
  tls = pkgs.runCommand "alisay-test-tls" { nativeBuildInputs = [ pkgs.openssl ]; } ''
    mkdir $out
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj /CN=call.test -addext subjectAltName=DNS:call.test \
      -keyout $out/key.pem -out $out/cert.pem
  '';

  secretFile = "/var/lib/alisay-test/turn-secret";
  # The operator's step before the first switch: a random secret, root-only.
  secretService = {
    wantedBy = [ "multi-user.target" ];
    requiredBy = [ "alisay.service" "alisay-coturn.service" ];
    before = [ "alisay.service" "alisay-coturn.service" ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      UMask = "0077";
    };
    script = ''
      install -d -m 0700 ${dirOf secretFile}
      ${pkgs.openssl}/bin/openssl rand -hex 32 > ${secretFile}
    '';
  };

  settings = {
    public_origin = "https://call.test";
    turn.urls = [
      "turn:call.test:3478?transport=udp"
      "turn:call.test:3478?transport=tcp"
    ];
    nginx = {
      tls_cert = "${tls}/cert.pem";
      tls_key = "${tls}/key.pem";
    };
  };

  # The module evaluated on its own, for the negative checks at evaluation time (the asserts
  # after `in`): each bad configuration must fail with a message naming the options involved.
  base = {
    services.alisay = {
      enable = true;
      inherit settings;
      turnSecretFile = secretFile;
    };
  };
  evalWith = modules:
    (import (pkgs.path + "/nixos/lib/eval-config.nix") {
      inherit (pkgs.stdenv.hostPlatform) system;
      modules = [ ./module.nix ] ++ modules;
    }).config;
  # Only this module's assertions are looked at (other modules' messages may not even
  # evaluate in this bare configuration, hence tryEval).
  ours = a:
    let r = builtins.tryEval (lib.hasInfix "services.alisay" a.message);
    in r.success && r.value;
  failedAssertions = modules:
    map (a: a.message) (lib.filter (a: ours a && !a.assertion) (evalWith modules).assertions);
  refuses = modules: needle:
    lib.assertMsg (lib.any (lib.hasInfix needle) (failedAssertions modules))
      "expected a failed assertion mentioning '${needle}', got: ${builtins.toJSON (failedAssertions modules)}";

  # A config that `alisay check` refuses (production with an http:// origin): building it
  # must fail, before anything could be switched.
  invalidCheck = pkgs.testers.testBuildFailure
    (evalWith [
      base
      { services.alisay.settings.public_origin = lib.mkForce "http://call.test"; }
    ]).services.alisay.rendered.checkedConfig;
in
assert refuses [ base { services.alisay.settings.turn.secret_file = "/etc/x"; } ]
  "services.alisay.settings sets turn.secret_file";
assert refuses [ base { services.alisay.turnSecretFile = lib.mkForce "/nix/store/x-secret"; } ]
  "services.alisay.turnSecretFile must be an absolute path outside the Nix store";
assert refuses [
  base
  { services.alisay = { coturn.enable = true; settings.turn.urls = lib.mkForce [ ]; }; }
]
  "services.alisay.coturn.enable requires services.alisay.settings.turn.urls";
assert refuses [
  base
  {
    services.alisay = {
      nginx.enable = true;
      settings.nginx = { tls_cert = lib.mkForce null; tls_key = lib.mkForce null; };
    };
  }
]
  "services.alisay.nginx.enable requires services.alisay.settings.nginx.tls_cert";
assert refuses [
  base
  { services.alisay.settings.nginx = { tls_cert = lib.mkForce null; tls_key = lib.mkForce null; }; }
]
  "services.alisay.settings.mode = \"production\" requires the site's certificate";
assert refuses [{ services.alisay = { enable = true; inherit settings; }; }]
  "services.alisay.settings.mode = \"production\" requires TURN";
pkgs.testers.runNixOSTest {
  name = "alisay";

  nodes.server = {
    imports = [ ./module.nix ];

    services.alisay = {
      enable = true;
      inherit settings;
      turnSecretFile = secretFile;
      nginx.enable = true;
      coturn.enable = true;
      openFirewall = true;
    };

    systemd.services.alisay-test-secret = secretService;

    # Another site on the same nginx: the shared-host case.
    services.nginx.virtualHosts."other.test".locations."/".return = "200 other-site";
    networking.firewall.allowedTCPPorts = [ 80 ];

    networking.hosts."127.0.0.1" = [ "call.test" ];
    environment.systemPackages = [ pkgs.coturn pkgs.curl pkgs.nftables ];
  };

  # The site's certificate from security.acme. There is no ACME server on the test network,
  # so only acme-<cert>.service runs to the end: it makes the self-signed placeholder and the
  # http-01 webroot, which is what NixOS 25.11's ProtectSystem=strict used to refuse for a
  # webroot outside /var/lib/acme (the module adds it to ReadWritePaths).
  nodes.acmehost = {
    imports = [ ./module.nix ];
    services.alisay = {
      enable = true;
      settings = builtins.removeAttrs settings [ "nginx" ];
      turnSecretFile = secretFile;
      nginx.enable = true;
      nginx.enableACME = true;
    };
    security.acme = {
      acceptTerms = true;
      defaults.email = "admin@call.test";
      defaults.server = "https://acme.invalid/dir";
    };
    systemd.services.alisay-test-secret = secretService;
    networking.hosts."127.0.0.1" = [ "call.test" ];
    environment.systemPackages = [ pkgs.curl ];
  };

  nodes.client = { nodes, ... }: {
    networking.hosts.${nodes.server.networking.primaryIPAddress} = [ "call.test" "other.test" ];
    # `alisay probe`, the operator's post-deploy check, runs from here.
    environment.systemPackages = [ pkgs.coturn pkgs.curl nodes.server.services.alisay.package ];
  };

  testScript = { nodes, ... }:
    let
      rendered = nodes.server.services.alisay.rendered;
      serverIP = nodes.server.networking.primaryIPAddress;
    in
    ''
      import shlex

      start_all()
      server.wait_for_unit("alisay.service")
      server.wait_for_unit("alisay-coturn.service")
      server.wait_for_unit("nginx.service")
      server.wait_for_open_port(8787)
      server.wait_for_open_port(443)
      server.wait_for_open_port(3478)
      client.wait_for_unit("multi-user.target")

      curl = "curl --silent --show-error --max-time 10 --cacert ${tls}/cert.pem"
      ws_headers = " ".join(
          "-H " + shlex.quote(h)
          for h in [
              "Connection: Upgrade",
              "Upgrade: websocket",
              "Sec-WebSocket-Version: 13",
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
          ]
      )

      def status(url, *extra):
          return client.succeed(
              f"{curl} --http1.1 -o /dev/null -w '%{{http_code}}' {' '.join(extra)} {url}"
          ).strip()

      with subtest("the running units are the rendered ones, with NixOS' drop-in on top"):
          for unit in ["alisay.service", "alisay-coturn.service"]:
              server.succeed(f"cmp /etc/systemd/system/{unit} ${rendered}/share/alisay/systemd/{unit}")
              server.succeed(f"test -e /etc/systemd/system/{unit}.d/overrides.conf")
          server.succeed("grep -qF 'include ${rendered}/share/alisay/nginx/alisay.conf;' /etc/nginx/nginx.conf")
          server.succeed("alisay check --config /etc/alisay/alisay.yaml")
          # The app runs its own coturn; the distribution's service stays off.
          server.fail("systemctl is-active coturn.service")

      with subtest("/healthz answers through nginx over TLS, from another machine"):
          out = client.succeed(f"{curl} https://call.test/healthz")
          assert '"ok":true' in out, out

      with subtest("a WebSocket upgrade of /ws from the public origin is accepted (101)"):
          # The socket stays open until the server's join timeout; curl gives up first.
          _, out = client.execute(
              f"{curl} --http1.1 -i -N --max-time 3 {ws_headers} -H 'Origin: https://call.test' https://call.test/ws"
          )
          assert out.startswith("HTTP/1.1 101"), out

      with subtest("/ws with a query string is refused (400)"):
          code = status("'https://call.test/ws?x'", ws_headers, "-H 'Origin: https://call.test'")
          assert code == "400", code

      with subtest("/ws from a foreign origin is refused (403)"):
          code = status("https://call.test/ws", ws_headers, "-H 'Origin: https://evil.test'")
          assert code == "403", code

      with subtest("the access log records /ws without its query string"):
          server.succeed("grep -q ' /ws ' /var/log/nginx/alisay.access.log")
          server.fail("grep -F '?' /var/log/nginx/alisay.access.log")

      with subtest("port 80 redirects to https"):
          out = client.succeed("curl --silent --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}' http://call.test/healthz")
          assert out == "301 https://call.test/healthz", out

      with subtest("another site on the same nginx keeps working"):
          out = client.succeed("curl --silent --max-time 10 http://other.test/")
          assert out == "other-site", out

      with subtest("alisay serve's own port is unreachable from other machines"):
          client.fail("curl --silent --max-time 5 http://call.test:8787/healthz")

      with subtest("TURN answers through the firewall and refuses a wrong secret (401)"):
          _, out = client.execute(
              "timeout 20 turnutils_uclient -n 3 -m 1 -c -X -W not-the-secret -u test"
              " -e ${serverIP} -r 3480 ${serverIP} 2>&1"
          )
          assert "401" in out, out

      with subtest("TURN admits issued credentials but refuses to relay to loopback or the LAN (403)"):
          for peer in ["127.0.0.1", "${serverIP}", "169.254.169.254"]:
              # The secret is read inside the VM, so it never appears in the test log.
              _, out = server.execute(
                  f"timeout 20 turnutils_uclient -n 3 -m 1 -c -X -W \"$(cat ${secretFile})\" -u test"
                  f" -e {peer} -r 3480 ${serverIP} 2>&1"
              )
              assert "403" in out and "401" not in out, f"{peer}: {out}"

      with subtest("alisay-coturn loads its nftables table at start and deletes it at stop"):
          server.succeed("cmp /etc/alisay/alisay-coturn.nft ${rendered}/share/alisay/nftables/alisay-coturn.nft")
          out = server.succeed("nft list table inet alisay_coturn")
          assert 'socket cgroupv2 level 2 "system.slice/alisay-coturn.service"' in out, out
          server.succeed("grep -qx '0::/system.slice/alisay-coturn.service' /proc/$(systemctl show -P MainPID alisay-coturn.service)/cgroup")
          server.succeed("systemctl stop alisay-coturn.service")
          server.fail("nft list table inet alisay_coturn")
          server.succeed("systemctl start alisay-coturn.service")
          server.wait_for_unit("alisay-coturn.service")
          server.succeed("nft list table inet alisay_coturn")
          server.wait_for_open_port(3478)

      with subtest("alisay probe, the operator's post-deploy check, passes from another machine"):
          # /healthz, the /ws upgrade and its refusals, security headers, a real join in a
          # fresh room, TURN allocation with the issued credentials through the firewall, and
          # 403 for every denied peer range. It exits 1 if any check fails.
          client.succeed("alisay probe https://call.test --ca-file ${tls}/cert.pem")

      with subtest("the TURN secret is in no unit, config, rendered file or process argument"):
          server.fail(
              "grep -rqsF -f ${secretFile} /etc/alisay /etc/systemd/system/alisay.service"
              " /etc/systemd/system/alisay-coturn.service ${rendered}/share"
          )
          # -q: a match wins over errors from processes that exit meanwhile.
          server.fail("grep -qsF -f ${secretFile} /proc/[0-9]*/cmdline")
          # coturn's runtime copy exists only on its private tmpfs, mode 0600.
          server.succeed("test \"$(stat -c %a /run/alisay-coturn/turnserver.conf)\" = 600")

      with subtest("alisay.yaml is root's only, as on every other host"):
          server.succeed("test \"$(stat -L -c '%a %U' /etc/alisay/alisay.yaml)\" = '600 root'")

      with subtest("a reload of the host's nftables.service brings coturn's table back"):
          server.succeed("nft list table inet alisay_coturn")
          server.succeed("systemctl reload nftables.service || nft flush ruleset")
          server.succeed("systemctl reload alisay-coturn.service")
          server.succeed("nft list table inet alisay_coturn")

      with subtest("systemd-analyze security rates alisay.service as hardened"):
          server.succeed("systemd-analyze security --threshold=20 alisay.service")

      with subtest("ACME: acme-<cert>.service may write the webroot under /var/lib/alisay"):
          acmehost.wait_for_unit("acme-call.test.service")
          acmehost.succeed("test -d /var/lib/alisay/acme/.well-known/acme-challenge")
          acmehost.wait_for_unit("nginx.service")
          acmehost.succeed("echo challenge-token > /var/lib/alisay/acme/.well-known/acme-challenge/t")
          out = acmehost.succeed("curl --silent --max-time 10 http://call.test/.well-known/acme-challenge/t")
          assert out.strip() == "challenge-token", out

      with subtest("a config alisay check refuses fails the build (checked before any switch)"):
          with open("${invalidCheck}/testBuildFailure.log") as f:
              log = f.read()
          assert "public_origin" in log, log
          with open("${invalidCheck}/testBuildFailure.exit") as f:
              assert f.read().strip() != "0"
    '';
}
