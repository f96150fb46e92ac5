# Shared by scripts/run and scripts/test: idempotent installs and the site build.
# Every step checks before it installs, so a second run costs seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

# The wasm-bindgen CLI must equal the library version in Cargo.lock.
ensure_wasm_bindgen() {
  local want have
  want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

ensure_node() {
  if ! command -v npm >/dev/null; then
    say "installing Node.js and npm"
    apt_install nodejs npm
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium"
    apt_install chromium
  fi
}

ensure_postgres() {
  if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    say "installing PostgreSQL 15"
    apt_install postgresql-15
  fi
}

ensure_end2end_packages() {
  ensure_node
  if [ ! -d end2end/node_modules/@playwright/test ] || [ ! -d end2end/node_modules/@axe-core/playwright ]; then
    say "installing the end-to-end test packages"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

# Builds the hydrate bundle into target/site/pkg (at the workspace's root, whatever
# CARGO_TARGET_DIR says: the server embeds that folder, server/src/site.rs) and copies the
# stylesheet beside it. Build it before the server.
build_site() {
  ensure_wasm_target
  ensure_wasm_bindgen
  say "building the wasm bundle"
  cargo build -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release
  mkdir -p "$ROOT/target/site/pkg"
  # The name section (function names for stack traces) was 5.9 MB of the 9.5 MB bundle
  # every browser downloads; a panic still prints its message, file and line.
  wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
    --out-dir "$ROOT/target/site/pkg" --out-name tally \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/frontend.wasm"
  cp style/main.css "$ROOT/target/site/pkg/tally.css"
  # A gzipped copy of each, embedded beside it and sent to browsers that take gzip
  # (site.rs); -n leaves out the name and time, so the copy changes only with the file.
  gzip -9 -n -k -f "$ROOT/target/site/pkg/tally_bg.wasm" "$ROOT/target/site/pkg/tally.js" \
    "$ROOT/target/site/pkg/tally.css"
}

# Cargo never deletes a build it no longer uses. A change to the dependency graph gives our
# own crates a new hash, and each of their test binaries and rlibs is hundreds of megabytes
# (CI keeps its target directory warm: one full disk failed a run). After a run, whatever of
# ours in a deps or incremental folder was not written during it is stale; deleting a fresh
# one by mistake costs a rebuild, never a wrong result.
prune_stale_builds() {
  local since=$1 deps stem names=()
  for stem in app server frontend tally $(ls app/tests server/tests fuzz/fuzz_targets | sed -n 's/\.rs$//;/^[a-z_]\+$/p'); do
    names+=(-name "$stem-????????????????*" -o -name "lib$stem-????????????????*" -o)
  done
  unset 'names[${#names[@]}-1]'
  for deps in "$CARGO_TARGET_DIR"/debug/deps "$CARGO_TARGET_DIR"/fuzz/*/debug/deps; do
    [ -d "$deps" ] || continue
    find "$deps" -maxdepth 1 -type f \( "${names[@]}" \) ! -newermt "@$since" -delete
    [ -d "$deps/../incremental" ] &&
      find "$deps/../incremental" -mindepth 1 -maxdepth 1 ! -newermt "@$since" -exec rm -rf {} +
  done
  return 0
}

# A throwaway PostgreSQL 15 cluster on a free port, owned by the `postgres` user when we
# are root, removed by stop_postgres. Exports TALLY_TEST_DATABASE_URL.
PG_TMP=""
export PG_BIN=/usr/lib/postgresql/15/bin

start_postgres() {
  ensure_postgres
  local bin=$PG_BIN port
  PG_TMP=$(mktemp -d /tmp/tally-pg.XXXXXX)
  local run=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_TMP"
    run=(runuser -u postgres --)
  fi
  port=55432
  "${run[@]}" "$bin/initdb" -D "$PG_TMP/data" -A trust -U postgres -E UTF8 --no-sync >"$PG_TMP/initdb.log"
  # A start can fail now and then (one did once, with the port free a second later): say
  # why, and try again on the next free port, three times in all.
  local attempt
  for attempt in 1 2 3; do
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    say "starting a throwaway PostgreSQL on port $port"
    if "${run[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -o \
        "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null; then
      export TALLY_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
      return 0
    fi
    echo "PostgreSQL did not start (attempt $attempt); its log ends:" >&2
    tail -n 20 "$PG_TMP/server.log" >&2 || true
    port=$((port + 1))
    sleep 2
  done
  return 1
}

stop_postgres() {
  [ -n "$PG_TMP" ] || return 0
  local run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" /usr/lib/postgresql/15/bin/pg_ctl -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMP"
  PG_TMP=""
}

# Validates the OpenAPI document with openapi-spec-validator (PyPI) in a private venv.
validate_openapi() {
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    say "installing python3-venv"
    apt_install python3 python3-venv
  fi
  local venv="$CARGO_TARGET_DIR/tools/venv"
  if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
    say "installing openapi-spec-validator"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q openapi-spec-validator==0.7.1
  fi
  "$venv/bin/pip" show -q anthropic >/dev/null 2>&1 || "$venv/bin/pip" install -q anthropic openai
  "$CARGO_TARGET_DIR/debug/tally" openapi > "$CARGO_TARGET_DIR/openapi.json"
  "$venv/bin/openapi-spec-validator" "$CARGO_TARGET_DIR/openapi.json"
}

# Schemathesis (PyPI, pinned) against the served /v1/openapi.json with every check (its
# default: all of them), a fixed seed so a run can be replayed, and the exceptions
# scripts/schemathesis.toml explains. Needs the venv of validate_openapi. It must find
# nothing. The server runs on a fresh SQLite file, or on the empty database $1 names.
contract_check() {
  local venv="$CARGO_TARGET_DIR/tools/venv" bin="$CARGO_TARGET_DIR/debug/tally" dir port key status=0 db
  "$venv/bin/pip" show -q schemathesis >/dev/null 2>&1 || "$venv/bin/pip" install -q schemathesis==4.32.5
  dir=$(mktemp -d /tmp/tally-contract.XXXXXX)
  port=3970
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  db=${1:-sqlite://$dir/t.db}
  key=$(DATABASE_URL="$db" "$bin" keys create --mode test --scope admin --name contract | tail -n 1)
  DATABASE_URL="$db" RUST_LOG=warn TALLY_ADDR="127.0.0.1:$port" "$bin" serve >"$dir/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  "$venv/bin/st" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/v1/openapi.json" \
    --max-examples 30 --seed 1 --continue-on-failure -H "Authorization: Bearer $key" \
    --no-color --output-sanitize false >"$dir/st.log" 2>&1 || status=$?
  kill "$pid"; wait "$pid" 2>/dev/null || true
  grep -E "generated|passed|failures?\b" "$dir/st.log" | tail -n 3
  [ $status = 0 ] || { cat "$dir/st.log"; tail -n 50 "$dir/serve.log"; }
  rm -rf "$dir"
  return $status
}

# cargo fuzz needs a nightly toolchain (these machines carry one) and cargo-fuzz.
ensure_fuzz() {
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    say "installing a nightly toolchain for cargo fuzz"
    rustup toolchain install nightly --profile minimal
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (about a minute, once)"
    cargo install cargo-fuzz --locked --version 0.13.2
  fi
}

# Fuzzes each target for $1 seconds, starting from the saved regression inputs. A crash
# (or a build failure) fails the run; a crash's input is left in fuzz/artifacts/<target>/.
run_fuzz() {
  local secs=$1 t log
  ensure_fuzz
  log=$(mktemp /tmp/tally-fuzz.XXXXXX)
  for t in money pricing webhook; do
    mkdir -p "fuzz/corpus/$t"
    cp -n fuzz/regressions/$t/* "fuzz/corpus/$t/"
    if ! (cd fuzz && cargo +nightly fuzz run --dev --target-dir "$CARGO_TARGET_DIR/fuzz" "$t" \
        "corpus/$t" -- -max_total_time="$secs" >"$log" 2>&1); then
      tail -60 "$log" >&2
      echo "fuzz target $t failed; see fuzz/artifacts/$t/" >&2
      return 1
    fi
    echo "fuzz $t: $(grep -E '^Done' "$log")"
  done
  rm -f "$log"
}

# The providers' Python SDKs against `tally serve` on a scratch SQLite database (test mode:
# the simulated provider answers through the real proxy). Needs the venv of
# validate_openapi, which installs the SDKs.
sdk_check() {
  local venv="$CARGO_TARGET_DIR/tools/venv" bin="$CARGO_TARGET_DIR/debug/tally" dir port admin
  dir=$(mktemp -d /tmp/tally-sdk.XXXXXX)
  port=3940
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  admin=$(DATABASE_URL="sqlite://$dir/t.db" "$bin" keys create --mode test --scope admin --name sdk | tail -n 1)
  DATABASE_URL="sqlite://$dir/t.db" RUST_LOG=warn TALLY_ADDR="127.0.0.1:$port" "$bin" serve >"$dir/serve.log" 2>&1 &
  local pid=$! status=0
  "$venv/bin/python" scripts/sdk_check.py "http://127.0.0.1:$port" "$admin" || status=$?
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ $status = 0 ] || cat "$dir/serve.log"
  rm -rf "$dir"
  return $status
}

# The typed clients in clients/ (scripts/clients generates them from the OpenAPI document):
# the committed ones must be what the document generates now, then each runs against `tally
# serve` on a scratch SQLite file: TypeScript compiled by tsc (strict, nothing emitted on a
# type error: the document's types must still fit the client's use), Python with the tools
# venv. Installs what it needs, idempotently (scripts/clients installs the generators).
# TALLY_BIN names another binary than target/debug/tally.
clients_check() {
  local venv="$CARGO_TARGET_DIR/tools/venv" bin="${TALLY_BIN:-$CARGO_TARGET_DIR/debug/tally}" dir port admin pid status=0
  dir=$(mktemp -d /tmp/tally-clients.XXXXXX)
  if ! TALLY_BIN="$bin" "$ROOT/scripts/clients" "$dir/gen"; then rm -rf "$dir"; return 1; fi
  if ! { diff -u clients/openapi.json "$dir/gen/openapi.json" &&
      diff -u clients/typescript/src/schema.d.ts "$dir/gen/typescript/src/schema.d.ts" &&
      diff -ru -x __pycache__ -x .pdm-build clients/python "$dir/gen/python"; } >"$dir/stale.diff" 2>&1; then
    head -n 60 "$dir/stale.diff"
    echo "clients/ is stale: the OpenAPI document generates other clients; run scripts/clients and commit clients/" >&2
    rm -rf "$dir"
    return 1
  fi
  if ! "$venv/bin/python" -c 'import sys, tally_client; sys.exit(tally_client.__file__ != sys.argv[1])' \
      "$ROOT/clients/python/tally_client/__init__.py" 2>/dev/null; then
    say "installing clients/python into the tools venv (editable)"
    "$venv/bin/pip" install -q -e clients/python
  fi
  port=3950
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  admin=$(DATABASE_URL="sqlite://$dir/t.db" "$bin" keys create --mode test --scope admin --name clients | tail -n 1)
  DATABASE_URL="sqlite://$dir/t.db" RUST_LOG=warn TALLY_ADDR="127.0.0.1:$port" "$bin" serve >"$dir/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  (cd clients/typescript && node_modules/.bin/tsc -p . && node dist/test/check.js "http://127.0.0.1:$port" "$admin") ||
    status=$?
  "$venv/bin/python" clients/python_check.py "http://127.0.0.1:$port" "$admin" || status=$?
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ $status = 0 ] || tail -n 50 "$dir/serve.log"
  rm -rf "$dir"
  return $status
}
