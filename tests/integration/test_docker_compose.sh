#!/usr/bin/env bash
#
# docker-compose.yaml, the Dockerfile, .dockerignore, .env and docker/redstream.conf, without a
# Docker engine (none runs in CI): the compose file is validated and rendered by
# docker-compose (`config` needs no engine) and the rendered services are checked; the
# containers' configuration passes --check-config; the Dockerfile is checked for its stages,
# user, health check and COPY sources; and the build stage's commands are run here, on the
# build context exactly as .dockerignore leaves it, up to the .deb the runtime stage installs.
# What cannot be tested without an engine: that the images build and the containers start.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RS_CONSUMER=$RS_BUILD_DIR/redstream-consumer
SRC=$RS_SOURCE_DIR

# Variables of the caller's shell would change what compose renders.
unset REDIS_PASSWORD COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME COMPOSE_ENV_FILES \
    COMPOSE_PATH_SEPARATOR

rs_case "prerequisites"
if ! command -v docker-compose >/dev/null; then
    rs_fail "docker-compose is not installed: install Debian's docker-compose package (scripts/install-deps.sh does); no Docker engine is needed"
fi
[[ -x $RS_CONSUMER ]] || rs_fail "$RS_CONSUMER not built"
# The Python that runs docker-compose 1.x has PyYAML (a dependency of it); a pyenv or venv
# python3 earlier in PATH may not.
PY=""
for candidate in "$(sed -n '1s/^#! *\([^ ]*python[0-9.]*\).*/\1/p' "$(command -v docker-compose)")" \
    /usr/bin/python3 python3; do
    if [[ -n $candidate ]] && "$candidate" -c 'import yaml' 2>/dev/null; then
        PY=$candidate
        break
    fi
done
[[ -n $PY ]] || rs_fail "no python3 with the yaml module (Debian: python3-yaml)"
rs_pass

# The checks that need YAML or a real parser, one subcommand each. Each prints what is wrong
# and exits 1, or prints its result.
cat >"$RS_TMP/inspect.py" <<'PYEOF'
import json, os, re, shutil, sys, yaml

def load(path):
    with open(path) as f:
        return yaml.safe_load(f)["services"]

def fail(msg):
    print(msg.replace("; ", "\n"), file=sys.stderr)
    sys.exit(1)

def enabled(services, profiles):
    # docker-compose's rule (compose.service.Service.enabled_for_profiles, and the compose
    # spec): a service without profiles always runs, one with profiles only when one of them
    # is enabled.
    return sorted(n for n, s in services.items()
                  if "profiles" not in s or any(p in s["profiles"] for p in profiles))

def ports(service):
    out = set()
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.add("%s:%s" % (p.get("published"), p.get("target")))
        else:
            out.add(str(p))
    return out

def mounts(service):
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            source, target, ro = v.get("source"), v.get("target"), bool(v.get("read_only"))
        else:
            parts = v.split(":")
            source, target = parts[0], parts[1]
            ro = len(parts) > 2 and "ro" in parts[2].split(",")
        if source and source.startswith("/"):
            source = os.path.realpath(source)
        out.append((source, target, ro))
    return out

def env(service):
    e = service.get("environment", {})
    if isinstance(e, list):
        e = dict(x.split("=", 1) for x in e)
    return e

def cmd_services(path, *profiles):
    print(" ".join(enabled(load(path), profiles)))

def cmd_passwords(path):
    s = load(path)
    cmd = s["redis"]["command"]
    cmd = cmd if isinstance(cmd, list) else cmd.split()
    print("redis --requirepass", cmd[cmd.index("--requirepass") + 1])
    print("redis REDIS_PASSWORD", env(s["redis"]).get("REDIS_PASSWORD"))
    for name in ("consumer", "producer"):
        print(name, "REDSTREAM_REDIS_PASSWORD", env(s[name]).get("REDSTREAM_REDIS_PASSWORD"))

def cmd_check(path, src):
    s = load(path)
    errors = []
    def want(cond, msg):
        if not cond:
            errors.append(msg)
    conf = (os.path.realpath(os.path.join(src, "docker/redstream.conf")), "/etc/redstream/redstream.conf", True)

    want(s["redis"].get("image", "").startswith("redis:7"), "redis: image redis:7")
    want("6380:6379" in ports(s["redis"]), "redis: port 6380:6379, got %s" % ports(s["redis"]))
    want(s["redis"].get("healthcheck", {}).get("test"), "redis: a healthcheck")

    j = s["jaeger"]
    want(j.get("image") == "jaegertracing/all-in-one:1.57", "jaeger: image all-in-one:1.57")
    want(str(env(j).get("COLLECTOR_OTLP_ENABLED")).lower() == "true",
         "jaeger: COLLECTOR_OTLP_ENABLED=true")
    want({"4318:4318", "16686:16686"} <= ports(j), "jaeger: ports 4318 and 16686, got %s" % ports(j))

    c = s["consumer"]
    build = c.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    want(context and os.path.realpath(context) == os.path.realpath(src),
         "consumer: built from the repository root, got %r" % (build,))
    want(c.get("image") == "redstream:latest", "consumer: image redstream:latest")
    want("8083:8083" in ports(c), "consumer: port 8083:8083, got %s" % ports(c))
    hc = c.get("healthcheck", {})
    want(not hc.get("disable") and "http://127.0.0.1:8083/healthz" in " ".join(hc.get("test", [])),
         "consumer: a healthcheck on http://127.0.0.1:8083/healthz, got %r" % (hc,))
    want(conf in mounts(c), "consumer: %s mounted read-only, got %s" % (conf, mounts(c)))
    dep = c.get("depends_on", {})
    want(isinstance(dep, dict) and dep.get("redis", {}).get("condition") == "service_healthy",
         "consumer: depends on redis being healthy, got %r" % (dep,))
    want("jaeger" in dep, "consumer: depends on jaeger")
    want(c.get("restart") == "unless-stopped", "consumer: restart unless-stopped")
    want(str(c.get("stop_grace_period")) in ("30s", "30"), "consumer: stop_grace_period 30s")
    want("REDSTREAM_REDIS_PASSWORD" in env(c), "consumer: REDSTREAM_REDIS_PASSWORD set")

    p = s["producer"]
    want(p.get("profiles") == ["producer"], "producer: profiles [producer], got %r" % p.get("profiles"))
    want(p.get("image") == c.get("image"), "producer: the consumer's image")
    ep = p.get("entrypoint")
    want((ep if isinstance(ep, list) else [ep]) == ["redstream-producer"],
         "producer: entrypoint redstream-producer, got %r" % (ep,))
    want(p.get("command") == ["-c", "/etc/redstream/redstream.conf"],
         "producer: command -c /etc/redstream/redstream.conf, got %r" % (p.get("command"),))
    want(conf in mounts(p), "producer: %s mounted read-only, got %s" % (conf, mounts(p)))
    want("REDSTREAM_REDIS_PASSWORD" in env(p), "producer: REDSTREAM_REDIS_PASSWORD set")
    phc = p.get("healthcheck", {})
    want(phc.get("disable") or phc.get("test") == ["NONE"],
         "producer: the image's HTTP healthcheck disabled, got %r" % (phc,))
    pdep = p.get("depends_on", {})
    want({"redis", "consumer"} <= set(pdep), "producer: depends on redis and consumer")
    default = enabled(s, [])
    want(all(d in default for d in pdep),
         "producer: depends only on services that run without a profile: %s" % list(pdep))

    for name, svc in s.items():
        for source, _, _ in mounts(svc):
            if source and source.startswith("/"):
                want(os.path.exists(source), "%s: mounted %s does not exist" % (name, source))
    if errors:
        fail("; ".join(errors))
    print("ok")

# .dockerignore, as Docker applies it (moby/patternmatcher): patterns relative to the context
# root, cleaned of leading and trailing slashes; "*" and "?" stop at "/", "**" crosses
# directories; a path is excluded when it or a parent directory matches the last matching
# pattern, and "!" patterns re-include.
def ignore_rules(src):
    rules = []
    path = os.path.join(src, ".dockerignore")
    if not os.path.exists(path):
        return rules
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = os.path.normpath(line[1:].strip() if neg else line).lstrip("/")
        rx, i = "", 0
        while i < len(pat):
            ch = pat[i]
            if pat.startswith("**/", i):
                rx += "(.*/)?"; i += 3; continue
            if pat.startswith("**", i):
                rx += ".*"; i += 2; continue
            rx += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch))
            i += 1
        rules.append((neg, re.compile("^" + rx + "$")))
    return rules

def excluded(rules, rel):
    parts = rel.split("/")
    candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    out = False
    for neg, rx in rules:
        if any(rx.match(c) for c in candidates):
            out = not neg
    return out

def cmd_excluded(src, *paths):
    rules = ignore_rules(src)
    for rel in paths:
        print("%s %s" % ("excluded" if excluded(rules, rel) else "included", rel))

def cmd_context(src, dest):
    rules = ignore_rules(src)
    prune = not any(neg for neg, _ in rules)
    count = 0
    for root, dirs, files in os.walk(src):
        relroot = os.path.relpath(root, src)
        relroot = "" if relroot == "." else relroot + "/"
        if prune:
            dirs[:] = [d for d in dirs if not excluded(rules, relroot + d)]
        os.makedirs(os.path.join(dest, relroot), exist_ok=True)
        for f in files:
            rel = relroot + f
            if not excluded(rules, rel):
                shutil.copy2(os.path.join(src, rel), os.path.join(dest, rel), follow_symlinks=False)
                count += 1
    print(count)

# The Dockerfile: instructions with continuation lines joined, comments dropped, split into
# stages at FROM.
def stages(path):
    instructions, cur = [], ""
    for line in open(path):
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur.strip():
            word, _, rest = cur.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
        cur = ""
    out = []
    for word, rest in instructions:
        if word == "FROM":
            out.append({"from": rest, "body": []})
        elif out:
            out[-1]["body"].append((word, rest))
    return out

def cmd_dockerfile(path, src):
    st = stages(path)
    errors = []
    def want(cond, msg):
        if not cond:
            errors.append(msg)
    bases = [s["from"].split()[0] for s in st]
    want(len(st) >= 2 and all(b == "debian:bookworm-slim" for b in bases),
         "two or more stages, all FROM debian:bookworm-slim; got %s" % bases)
    names = [s["from"].split()[2] for s in st if len(s["from"].split()) == 3]
    last = st[-1]["body"] if st else []
    def last_of(word):
        vals = [rest for w, rest in last if w == word]
        return vals[-1] if vals else None
    user = last_of("USER")
    want(user is not None and user.split(":")[0] not in ("root", "0"),
         "the runtime stage runs as a non-root USER, got %r" % user)
    hc = last_of("HEALTHCHECK") or ""
    want("/healthz" in hc and "8083" in hc and not hc.upper().startswith("NONE"),
         "the runtime stage has a HEALTHCHECK on :8083/healthz, got %r" % hc)
    want(last_of("EXPOSE") == "8083", "EXPOSE 8083")
    want(last_of("STOPSIGNAL") == "SIGTERM", "STOPSIGNAL SIGTERM")
    def exec_form(word):
        try:
            return json.loads(last_of(word) or "null")
        except ValueError:
            return last_of(word)
    want(exec_form("ENTRYPOINT") == ["redstream-consumer"],
         "ENTRYPOINT [\"redstream-consumer\"], got %r" % last_of("ENTRYPOINT"))
    want(exec_form("CMD") == ["-c", "/etc/redstream/redstream.conf"],
         "CMD [\"-c\", \"/etc/redstream/redstream.conf\"], got %r" % last_of("CMD"))
    runs = " ".join(rest for s in st for w, rest in s["body"] if w == "RUN")
    want("-DREDSTREAM_TESTS=OFF" in runs, "the build configures with -DREDSTREAM_TESTS=OFF")
    want("cpack -G DEB" in runs, "the build makes the .deb with cpack -G DEB")
    want("rm -rf /var/lib/apt/lists/*" in " ".join(r for w, r in last if w == "RUN"),
         "the runtime stage cleans the apt lists")
    # The build stage takes the whole context, which the last case of this test builds.
    copies = [rest.split() for w, rest in (st[0]["body"] if st else []) if w == "COPY"]
    want(any(c[0] == "." for c in copies),
         "the build stage copies the whole context (COPY . /src), got %s" % copies)
    rules = ignore_rules(src)
    for s in st:
        for word, rest in s["body"]:
            if word not in ("COPY", "ADD"):
                continue
            args = rest.split()
            frm = [a.split("=", 1)[1] for a in args if a.startswith("--from=")]
            args = [a for a in args if not a.startswith("--")]
            if args and args[0].startswith("["):
                args = yaml.safe_load(rest[rest.index("["):])
            sources = args[:-1]
            want(sources, "%s %s has no source" % (word, rest))
            if frm:
                want(frm[0] in names, "%s --from=%s names no earlier stage" % (word, frm[0]))
                continue
            for source in sources:
                rel = os.path.normpath(source).lstrip("/")
                want(os.path.exists(os.path.join(src, rel)),
                     "%s source %s does not exist" % (word, source))
                want(rel == "." or not excluded(rules, rel),
                     "%s source %s is excluded by .dockerignore" % (word, source))
    if errors:
        fail("; ".join(errors))
    print("ok")

{"services": cmd_services, "passwords": cmd_passwords, "check": cmd_check,
 "excluded": cmd_excluded, "context": cmd_context,
 "dockerfile": cmd_dockerfile}[sys.argv[1]](*sys.argv[2:])
PYEOF

INSPECT=("$PY" "$RS_TMP/inspect.py")

# compose NAME ARGS...: docker-compose on the repository's file from another directory (so
# the working directory does not matter), output in $RS_TMP/NAME.{out,err}.
compose() {
    local name=$1
    shift
    rs_run "$name" docker-compose --project-directory "$SRC" -f "$SRC/docker-compose.yaml" "$@"
}

cd "$RS_TMP"

rs_case "docker-compose config -q accepts the file, without warnings"
compose validate config -q
rs_assert_exit 0
rs_assert_file_lacks "$RS_ERR" "WARNING"
rs_assert_file_lacks "$RS_ERR" "is not set"
compose validate-producer --profile producer config -q
rs_assert_exit 0
rs_assert_file_lacks "$RS_ERR" "WARNING"
rs_pass

rs_case "redis, jaeger and consumer run by default; the producer only with --profile producer"
compose rendered config
rs_assert_exit 0
rendered=$RS_TMP/rendered.out
compose rendered-producer --profile producer config
rs_assert_exit 0
rendered_producer=$RS_TMP/rendered-producer.out
rs_assert_eq "consumer jaeger redis" "$("${INSPECT[@]}" services "$rendered")" "default services"
rs_assert_eq "consumer jaeger producer redis" "$("${INSPECT[@]}" services "$rendered_producer" producer)" \
    "services with --profile producer"
compose services config --services
rs_assert_exit 0
listed=$(sort "$RS_OUT" | tr '\n' ' ')
# docker-compose 1.x lists every service here whatever the profiles; Compose v2 only the
# enabled ones.
if [[ $listed != "consumer jaeger producer redis " ]]; then
    rs_assert_eq "consumer jaeger redis " "$listed" "config --services without a profile"
fi
compose services-producer --profile producer config --services
rs_assert_exit 0
rs_assert_eq "consumer jaeger producer redis " "$(sort "$RS_OUT" | tr '\n' ' ')" \
    "config --services with --profile producer"
rs_pass

rs_case "the rendered services: ports 6380, 8083, 4318, 16686, health checks, config mount"
rs_run check "${INSPECT[@]}" check "$rendered_producer" "$SRC"
rs_assert_exit 0
rs_assert_eq "ok" "$(cat "$RS_OUT")" "rendered configuration"
rs_pass

rs_case ".env sets REDIS_PASSWORD with a comment, and is kept out of the image"
rs_assert_file_contains "$SRC/.env" "#"
dotenv_password=$(sed -n 's/^REDIS_PASSWORD=//p' "$SRC/.env")
rs_assert_eq "redis123" "$dotenv_password" "REDIS_PASSWORD in .env"
rs_run excluded "${INSPECT[@]}" excluded "$SRC" .env
rs_assert_eq "excluded .env" "$(cat "$RS_OUT")" ".dockerignore"
rs_pass

# expect_passwords FILE VALUE: every place the password goes has VALUE.
expect_passwords() {
    local want
    want=$(printf '%s\n' "redis --requirepass $2" "redis REDIS_PASSWORD $2" \
        "consumer REDSTREAM_REDIS_PASSWORD $2" "producer REDSTREAM_REDIS_PASSWORD $2")
    rs_run passwords "${INSPECT[@]}" passwords "$1"
    rs_assert_exit 0
    rs_assert_eq "$want" "$(cat "$RS_OUT")" "passwords rendered"
}

rs_case "the password comes from .env, to redis and both programs"
expect_passwords "$rendered_producer" "$dotenv_password"
# A copy of the project whose .env holds another value proves that .env is read (its value
# is also the built-in default).
mkdir -p "$RS_TMP/project/docker"
cp "$SRC/docker-compose.yaml" "$RS_TMP/project/"
cp "$SRC/docker/redstream.conf" "$RS_TMP/project/docker/"
sed 's/^REDIS_PASSWORD=.*/REDIS_PASSWORD=from-dotenv-51/' "$SRC/.env" >"$RS_TMP/project/.env"
rs_run copy docker-compose -f "$RS_TMP/project/docker-compose.yaml" --profile producer config
rs_assert_exit 0
expect_passwords "$RS_OUT" from-dotenv-51
rs_pass

rs_case "REDIS_PASSWORD in the environment overrides .env"
rs_run env-override env REDIS_PASSWORD=something-else docker-compose --project-directory "$SRC" \
    -f "$SRC/docker-compose.yaml" --profile producer config
rs_assert_exit 0
expect_passwords "$RS_OUT" something-else
rs_pass

rs_case "without .env and without REDIS_PASSWORD the demo's password applies, silently"
rm "$RS_TMP/project/.env"
rs_run no-dotenv docker-compose -f "$RS_TMP/project/docker-compose.yaml" --profile producer config
rs_assert_exit 0
rs_assert_file_lacks "$RS_ERR" "is not set"
expect_passwords "$RS_OUT" redis123
rs_pass

rs_case "docker/redstream.conf passes --check-config, for the compose network, no password"
rs_run check-config "$RS_CONSUMER" --check-config -c "$SRC/docker/redstream.conf"
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "redis:    redis:6379"
rs_assert_file_contains "$RS_OUT" "password set (built-in default)"
rs_assert_file_contains "$RS_OUT" "health:   0.0.0.0:8083"
rs_assert_file_contains "$RS_OUT" "tracing:  enabled, endpoint http://jaeger:4318/v1/traces"
rs_run check-config-env env REDSTREAM_REDIS_PASSWORD=from-compose-77 \
    "$RS_CONSUMER" --check-config -c "$SRC/docker/redstream.conf"
rs_assert_exit 0
rs_assert_file_contains "$RS_OUT" "password set (from environment REDSTREAM_REDIS_PASSWORD)"
rs_assert_file_lacks "$RS_OUT" "from-compose-77"
if grep -nE '^[[:space:]]*password(_file)?[[:space:]]*=' "$SRC/docker/redstream.conf"; then
    rs_fail "docker/redstream.conf must not set a password: compose passes it in the environment"
fi
rs_pass

rs_case "the Dockerfile: bookworm-slim stages, non-root USER, HEALTHCHECK, COPY sources present"
rs_run dockerfile "${INSPECT[@]}" dockerfile "$SRC/Dockerfile" "$SRC"
rs_assert_exit 0
rs_assert_eq "ok" "$(cat "$RS_OUT")" "Dockerfile"
rs_pass

rs_case ".dockerignore leaves out VCS data, build trees, node_modules and secrets, keeps sources"
rs_run context "${INSPECT[@]}" context "$SRC" "$RS_TMP/context"
rs_assert_exit 0
for gone in .git .env build build-asan build-tsan tests/otlp-receiver/node_modules; do
    [[ ! -e $RS_TMP/context/$gone ]] || rs_fail "$gone is in the build context"
done
for kept in CMakeLists.txt service/consumer_main.c service/producer_main.c \
    config/redstream.conf systemd/redstream-consumer.service; do
    [[ -e $RS_TMP/context/$kept ]] || rs_fail "$kept is missing from the build context"
done
rs_pass

# The build stage's commands (Dockerfile, "build"), run on the context copy: it must hold all
# the package needs, and the package must be the one the runtime stage installs.
rs_case "the build context builds the .deb the runtime stage installs"
ctx=$RS_TMP/context
rs_run cmake-configure cmake -S "$ctx" -B "$ctx/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX=/usr -DREDSTREAM_TESTS=OFF
rs_assert_exit 0
rs_run cmake-build cmake --build "$ctx/build" -j"$(nproc)"
rs_assert_exit 0
rs_run cpack env -C "$ctx/build" cpack -G DEB -B "$ctx/build/cpack"
rs_assert_exit 0
debs=()
for deb in "$ctx"/build/cpack/*.deb; do
    if [[ -e $deb && $(dpkg-deb -f "$deb" Package) == redstream ]]; then
        debs+=("$deb")
    fi
done
rs_assert_eq 1 "${#debs[@]}" "packages named redstream made by cpack"
rs_run deb-contents dpkg-deb --contents "${debs[0]}"
rs_assert_exit 0
for path in ./usr/bin/redstream-consumer ./usr/bin/redstream-producer \
    ./etc/redstream/redstream.conf; do
    grep -qE " ${path//./\\.}\$" "$RS_OUT" || rs_fail "the .deb lacks $path"
done
depends=$(dpkg-deb -f "${debs[0]}" Depends)
rs_assert_match 'libhiredis' "$depends" "the .deb's Depends (apt installs them in the image)"
rs_pass
