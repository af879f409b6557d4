#!/usr/bin/env bash
# deploy/azure.sh — the tutorial "Django web app with a user-assigned managed identity" as one
# idempotent command, passwordless end to end.
#
#   deploy/azure.sh up   --name PREFIX --location LOC [--dry-run] [--container] [--sku B1]
#                        [--my-ip IP] [--keep-my-ip] [--zip PATH] [--subscription ID] [--verbose]
#                        [--moderator UPN|OBJECT-ID]...
#   deploy/azure.sh down --name PREFIX [--yes] [--no-wait] [--dry-run]
#
# `up` creates what is missing and leaves what exists (every create is guarded by a show/list
# that finds it), printing one line per step, and ends with the site's URL:
#    1 resource group             rg-PREFIX
#    2 user-assigned identity     id-PREFIX (the app's only credential; also its PostgreSQL role)
#    3 PostgreSQL flexible server psql-PREFIX-HASH, v16, Burstable B1ms, 32 GiB, Microsoft Entra
#                                 authentication only: no admin password exists at all
#    4 Entra admin                the signed-in user (az ad signed-in-user show)
#    5 firewall rule              0.0.0.0 = "allow Azure services", so App Service can connect
#    6 database                   restaurant
#    7 database role              psql as the Entra admin (token from az account get-access-token
#                                 in PGPASSWORD, never printed): pgaadauth_create_principal for
#                                 the identity, GRANT CONNECT + USAGE, CREATE ON SCHEMA public.
#                                 Your IP is allowed only for this step and removed right after
#                                 (also if the script fails), unless --keep-my-ip.
#    8 storage account            stPREFIXHASH: no public blob access, HTTPS only, TLS 1.2,
#                                 shared keys disabled (Entra only)
#    9 blob container             photos, private (created through ARM: no data role needed)
#   10 role assignment            Storage Blob Data Contributor for the identity, scoped to the
#                                 storage account (not the resource group)
#   11 Log Analytics workspace    log-PREFIX (where Application Insights keeps its data)
#   12 Application Insights       appi-PREFIX, workspace-based, local authentication disabled:
#                                 only Microsoft Entra tokens are accepted, no key works alone
#                                 (az resource: the CLI itself, not the application-insights
#                                 extension, so every line is checked offline)
#   13 role assignment            Monitoring Metrics Publisher for the identity, scoped to the
#                                 Application Insights component only
#   14 App Service plan           plan-PREFIX, Linux, B1
#   15 web app                    app-PREFIX-HASH, HTTPS only, basic auth off
#   16 identity on the web app    assigned at creation; checked on reruns
#   17 web app configuration      FTP(S) disabled, health check /health, startup command
#   18 app settings               the tutorial's names + PHOTO_URL_MODE=sas, WEBSITES_PORT=8000,
#                                 APPLICATIONINSIGHTS_CONNECTION_STRING and _AUTHENTICATION_STRING
#   19 deploy                     zip from deploy/package.sh (or --zip), skipped when the web
#                                 app's tag says the same package is already deployed
# With --container, the web app runs an image instead: an Azure Container Registry (Basic, no
# admin user), `az acr build` (remote build, no local Docker), AcrPull for the identity scoped to
# the registry, and the web app pulls with that identity (--acr-use-identity): no password.
#
# With --moderator (repeatable), three steps more (deploy/moderators.sh): an app registration
# with a Moderator app role, that role for each moderator, and App Service authentication with
# Microsoft Entra ID (no client secret, anonymous visitors allowed) plus MODERATORS.
#
# Re-running changes nothing: the database role step records itself in a tag on the server,
# the deployed package in a tag on the web app, so a second run needs neither psql nor a
# firewall opening. --dry-run prints the commands in order and runs none (no az, no login
# needed); values only Azure knows are shown as <placeholders>.
set -euo pipefail

if [ "${BASH_VERSINFO[0]}" -lt 4 ] || { [ "${BASH_VERSINFO[0]}" -eq 4 ] && [ "${BASH_VERSINFO[1]}" -lt 4 ]; }; then
  echo "error: bash 4.4 or newer is needed (macOS: brew install bash)" >&2
  exit 1
fi
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
readonly SCRIPT_DIR REPO_DIR

readonly PG_VERSION=16
readonly PG_TIER=Burstable
readonly PG_SKU=Standard_B1ms
readonly PG_STORAGE_GIB=32
readonly DB_NAME=restaurant
readonly CONTAINER_NAME=photos
readonly IMAGE_REPO=restaurant-review
# The built-in Linux image our binary runs on. Only its base matters: PYTHON:3.12 is Debian 12
# bookworm (glibc 2.36), the same Debian the binary is built on (rust:*-bookworm);
# deploy/test/glibc.sh checks the binary needs no newer glibc. Our startup command replaces
# the image's own app server.
readonly RUNTIME="PYTHON:3.12"
readonly APP_BINARY=/home/site/wwwroot/restaurant-review
# The exec bit of a zip entry is not guaranteed to survive the zip deployment, so set it again.
readonly STARTUP_COMMAND="chmod +x $APP_BINARY && exec $APP_BINARY"
readonly HEALTH_PATH=/health
readonly IP_RULE=deploy-client-ip
readonly AZURE_SERVICES_RULE=AllowAllAzureServicesAndResourcesWithinAzureIps
readonly DBROLE_TAG=restaurant-review-db-role
readonly PACKAGE_TAG=restaurant-review-package
readonly BLOB_ROLE="Storage Blob Data Contributor"
readonly PULL_ROLE=AcrPull
readonly MONITOR_ROLE="Monitoring Metrics Publisher"

DRY_RUN=false
VERBOSE=false
STEP=0
TOTAL=0
TEMP_IP_RULE_OPEN=false

usage() {
  cat <<'EOF'
Deploy restaurant-review to Azure App Service, passwordless end to end.

Usage:
  deploy/azure.sh up   --name PREFIX --location LOCATION [options]
  deploy/azure.sh down --name PREFIX [--yes] [--no-wait] [--dry-run]

up options:
  --name PREFIX        3-16 characters: lowercase letters, digits, hyphens; starts with a letter.
                       Resource names are derived from it (rg-PREFIX, app-PREFIX-HASH, ...).
  --location LOC       Azure region, e.g. westeurope, eastus
  --dry-run            print the az and psql commands in order; run nothing (no az, no login)
  --container          run a container image built by Azure Container Registry (az acr build)
                       instead of the zip package on a built-in image
  --sku SKU            App Service plan SKU (default B1)
  --my-ip IP           your public IP for the temporary PostgreSQL firewall rule
                       (default: detected with curl https://api.ipify.org)
  --keep-my-ip         keep the firewall rule for your IP (so you can use psql later)
  --zip PATH           deploy this zip instead of building one with deploy/package.sh
  --subscription ID    the subscription the names are derived for (dry-run); in a real run it
                       must be the current one (az account set --subscription ID)
  --verbose            print every az command as it runs
  --moderator USER     a moderator (user principal name or object id; repeat for several):
                       App Service authentication with Microsoft Entra ID, no client secret,
                       visitors anonymous; an app registration with a Moderator app role

down options:
  --yes                delete without asking (needed when there is no terminal)
  --no-wait            return before the deletion has finished

Runs again safely: what exists is left as it is. See deploy/README-deploy.md.
EOF
}

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
note() { printf '      %s\n' "$*"; }

# --- printing and running commands -------------------------------------------------------

# Shell-quote one word only when needed, so printed commands can be pasted as they are.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@,+%^-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

print_cmd() {
  local word line=""
  for word in "$@"; do line+="$(quote "$word") "; done
  printf '      %s\n' "${line% }"
}

# run CMD...: a command that changes something. Printed in dry-run, executed otherwise.
run() {
  if $DRY_RUN; then print_cmd "$@"; return 0; fi
  if $VERBOSE; then print_cmd "$@" >&2; fi
  "$@"
}

# lookup PLACEHOLDER CMD...: a read whose output is needed. In dry-run prints the command and
# answers PLACEHOLDER (words separated by spaces become lines, as -o tsv prints a list).
lookup() {
  local placeholder=$1; shift
  if $DRY_RUN; then
    printf '%s    # -> %s\n' "$(print_cmd "$@")" "$placeholder" >&3
    tr ' ' '\n' <<<"$placeholder"
    return 0
  fi
  if $VERBOSE; then print_cmd "$@" >&2; fi
  "$@"
}

# exists CMD...: 0 if a show/list finds the resource, 1 if Azure says it does not exist; any
# other failure (not signed in, no permission, network) stops the script with az's message.
# Dry-run plans as if nothing existed.
exists() {
  $DRY_RUN && return 1
  if $VERBOSE; then print_cmd "$@" >&2; fi
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -eq 0 ] && return 0
  if [ "$rc" -eq 3 ] || grep -qiE 'ResourceNotFound|ResourceGroupNotFound|NotFound|was not found|could not be found|does not exist' <<<"$err"; then
    return 1
  fi
  printf '%s\n' "$err" >&2
  die "'$(print_cmd "$@" | sed 's/^ *//')' failed (exit $rc)"
}

step() {
  STEP=$((STEP + 1))
  printf '[%d/%d] %s' "$STEP" "$TOTAL" "$*"
  if $DRY_RUN; then printf ' …\n'; fi
}
# Finish the current step's line (in dry-run the commands follow the step line instead).
done_() { $DRY_RUN || printf ' … %s\n' "$*"; }
created() { done_ created; }
there() { done_ "already there"; }

# --- names -------------------------------------------------------------------------------

short_hash() {
  local input=$1
  if command -v sha256sum >/dev/null 2>&1; then
    printf '%s' "$input" | sha256sum | cut -c1-6
  else
    printf '%s' "$input" | shasum -a 256 | cut -c1-6
  fi
}

file_hash() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -c1-12
  else shasum -a 256 "$1" | cut -c1-12; fi
}

# Names that must be unique across Azure (server, storage account, web app, registry) get a
# hash of subscription and prefix, so a rerun finds them and other subscriptions do not clash.
derive_names() {
  local hash alnum
  hash=$(short_hash "$SUBSCRIPTION_ID/$PREFIX")
  alnum=${PREFIX//-/}
  RG="rg-$PREFIX"
  IDENTITY="id-$PREFIX"
  SERVER="psql-$PREFIX-$hash"
  STORAGE="st${alnum:0:16}$hash"
  REGISTRY="cr${alnum:0:16}$hash"
  PLAN="plan-$PREFIX"
  WORKSPACE="log-$PREFIX"
  APPI="appi-$PREFIX"
  APP="app-$PREFIX-$hash"
  SUB_PATH="/subscriptions/$SUBSCRIPTION_ID/resourceGroups/$RG/providers"
  IDENTITY_ID="$SUB_PATH/Microsoft.ManagedIdentity/userAssignedIdentities/$IDENTITY"
  STORAGE_ID="$SUB_PATH/Microsoft.Storage/storageAccounts/$STORAGE"
  REGISTRY_ID="$SUB_PATH/Microsoft.ContainerRegistry/registries/$REGISTRY"
  SERVER_ID="$SUB_PATH/Microsoft.DBforPostgreSQL/flexibleServers/$SERVER"
  APP_ID="$SUB_PATH/Microsoft.Web/sites/$APP"
  WORKSPACE_ID="$SUB_PATH/Microsoft.OperationalInsights/workspaces/$WORKSPACE"
  APPI_ID="$SUB_PATH/microsoft.insights/components/$APPI"
}

# --- preflight ---------------------------------------------------------------------------

preflight() {
  if $DRY_RUN; then
    echo "Dry run: nothing is executed. Values only Azure knows are shown as <placeholders>;"
    echo "each create runs only when the show/list before it (not printed) finds nothing."
    SUBSCRIPTION_ID=${SUBSCRIPTION:-00000000-0000-0000-0000-000000000000}
    [ -n "$SUBSCRIPTION" ] || echo "Names ending in a hash depend on the subscription: pass --subscription ID to see yours."
    USER_ID="<your-object-id>"
    USER_UPN="<your-user-principal-name>"
    return 0
  fi
  command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
  local -a account me
  mapfile -t account < <(az account show --query "[id, user.type]" -o tsv 2>/dev/null || true)
  [ -n "${account[0]:-}" ] || die "not signed in to Azure: run 'az login' (and 'az account set --subscription ID')"
  SUBSCRIPTION_ID=${account[0]}
  local user_type=${account[1]:-}
  if [ -n "$SUBSCRIPTION" ] && [ "$SUBSCRIPTION" != "$SUBSCRIPTION_ID" ]; then
    die "signed in to subscription $SUBSCRIPTION_ID, not $SUBSCRIPTION: run 'az account set --subscription $SUBSCRIPTION'"
  fi
  [ "$user_type" = user ] || die "signed in as a $user_type; sign in as a user (az login) who becomes the PostgreSQL Entra admin"
  mapfile -t me < <(az ad signed-in-user show --query "[id, userPrincipalName]" -o tsv || true)
  [ -n "${me[1]:-}" ] || die "could not read the signed-in user (az ad signed-in-user show)"
  USER_ID=${me[0]}
  USER_UPN=${me[1]}
  echo "Subscription $SUBSCRIPTION_ID, signed in as $USER_UPN"
}

# --- steps -------------------------------------------------------------------------------

ensure_group() {
  step "Resource group $RG"
  if exists az group show --name "$RG"; then there; return; fi
  run az group create --name "$RG" --location "$LOCATION" --output none
  created
}

ensure_identity() {
  step "Managed identity $IDENTITY"
  if exists az identity show --resource-group "$RG" --name "$IDENTITY"; then there
  else
    run az identity create --resource-group "$RG" --name "$IDENTITY" --location "$LOCATION" --output none
    created
  fi
  local -a ids
  mapfile -t ids < <(lookup '<identity-client-id> <identity-principal-id>' \
    az identity show --resource-group "$RG" --name "$IDENTITY" --query "[clientId, principalId]" -o tsv)
  IDENTITY_CLIENT_ID=${ids[0]:-}
  IDENTITY_PRINCIPAL_ID=${ids[1]:-}
  [ -n "$IDENTITY_PRINCIPAL_ID" ] || die "identity $IDENTITY has no principal id"
}

ensure_server() {
  step "PostgreSQL server $SERVER (Entra authentication only)"
  if exists az postgres flexible-server show --resource-group "$RG" --name "$SERVER"; then there; return; fi
  # No --admin-user/--admin-password: with password authentication disabled there is none.
  run az postgres flexible-server create --resource-group "$RG" --name "$SERVER" \
    --location "$LOCATION" --version "$PG_VERSION" --tier "$PG_TIER" --sku-name "$PG_SKU" \
    --storage-size "$PG_STORAGE_GIB" --microsoft-entra-auth Enabled --password-auth Disabled \
    --public-access None --yes --output none
  created
}

ensure_entra_admin() {
  step "Entra admin of $SERVER: $USER_UPN"
  local found=""
  $DRY_RUN || found=$(az postgres flexible-server microsoft-entra-admin list \
    --resource-group "$RG" --server-name "$SERVER" --query "[?objectId=='$USER_ID'].objectId" -o tsv)
  if [ -n "$found" ]; then there; return; fi
  run az postgres flexible-server microsoft-entra-admin create --resource-group "$RG" \
    --server-name "$SERVER" --display-name "$USER_UPN" --object-id "$USER_ID" --type User --output none
  created
}

ensure_azure_services_rule() {
  step "Firewall rule for Azure services (0.0.0.0) on $SERVER"
  if exists az postgres flexible-server firewall-rule show --resource-group "$RG" --server-name "$SERVER" \
    --name "$AZURE_SERVICES_RULE"; then there; return; fi
  run az postgres flexible-server firewall-rule create --resource-group "$RG" --server-name "$SERVER" \
    --name "$AZURE_SERVICES_RULE" --start-ip-address 0.0.0.0 --end-ip-address 0.0.0.0 --output none
  created
}

ensure_database() {
  step "Database $DB_NAME on $SERVER"
  if exists az postgres flexible-server db show --resource-group "$RG" --server-name "$SERVER" \
    --name "$DB_NAME"; then there; return; fi
  run az postgres flexible-server db create --resource-group "$RG" --server-name "$SERVER" \
    --name "$DB_NAME" --output none
  created
}

detect_ip() {
  [ -n "$MY_IP" ] && return 0
  if $DRY_RUN; then
    printf '      curl -fsS https://api.ipify.org    # -> <your-ip>\n'
    MY_IP="<your-ip>"
    return 0
  fi
  MY_IP=$(curl -fsS --max-time 10 https://api.ipify.org) \
    || die "could not detect your public IP: pass --my-ip IP"
  [[ $MY_IP =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "unexpected answer for your IP: '$MY_IP'; pass --my-ip IP"
}

# The firewall rule for the caller's IP; returns 0 if it had to be created or changed.
open_ip_rule() {
  detect_ip
  local current=""
  $DRY_RUN || current=$(az postgres flexible-server firewall-rule show --resource-group "$RG" \
    --server-name "$SERVER" --name "$IP_RULE" --query startIpAddress -o tsv 2>/dev/null) || current=""
  [ "$current" = "$MY_IP" ] && return 1
  local verb=create
  [ -n "$current" ] && verb=update
  run az postgres flexible-server firewall-rule "$verb" --resource-group "$RG" --server-name "$SERVER" \
    --name "$IP_RULE" --start-ip-address "$MY_IP" --end-ip-address "$MY_IP" --output none
  return 0
}

close_temp_ip_rule() {
  $TEMP_IP_RULE_OPEN || return 0
  TEMP_IP_RULE_OPEN=false
  run az postgres flexible-server firewall-rule delete --resource-group "$RG" --server-name "$SERVER" \
    --name "$IP_RULE" --yes --output none
  $DRY_RUN || note "temporary firewall rule $IP_RULE for $MY_IP removed"
}

ensure_kept_ip_rule() {
  step "Firewall rule for your IP on $SERVER (kept: --keep-my-ip)"
  if open_ip_rule; then created; else there; fi
}

psql_as_admin() {
  local database=$1 sql=$2
  local conninfo="host=$SERVER.postgres.database.azure.com port=5432 dbname=$database user='$USER_UPN' sslmode=require"
  if $DRY_RUN; then
    # shellcheck disable=SC2016 # printed literally: the plan shows where the token goes
    printf '      PGPASSWORD="$TOKEN" %s\n' "$(print_cmd psql "$conninfo" -v ON_ERROR_STOP=1 -At -c "$sql" | sed 's/^ *//')" >&3
    return 0
  fi
  PGPASSWORD="$PG_TOKEN" psql "$conninfo" -v ON_ERROR_STOP=1 -At -c "$sql"
}

ensure_db_role() {
  step "PostgreSQL role $IDENTITY for the identity (CONNECT, USAGE and CREATE on schema public)"
  local tag=""
  $DRY_RUN || tag=$(az postgres flexible-server show --resource-group "$RG" --name "$SERVER" \
    --query "tags.\"$DBROLE_TAG\"" -o tsv)
  if [ "$tag" = "$IDENTITY" ]; then there; return; fi
  $DRY_RUN || command -v psql >/dev/null 2>&1 \
    || die "psql is needed once to create the identity's database role (apt-get install postgresql-client, brew install libpq)"
  if ! $KEEP_MY_IP && open_ip_rule; then
    TEMP_IP_RULE_OPEN=true
    $DRY_RUN || note "temporary firewall rule $IP_RULE for $MY_IP (removed again after this step)"
  fi
  if $DRY_RUN; then
    # shellcheck disable=SC2016 # printed literally
    printf '%s    # -> $TOKEN: in PGPASSWORD only, never printed\n' \
      "$(print_cmd az account get-access-token --resource-type oss-rdbms --query accessToken -o tsv)"
  fi
  $DRY_RUN || PG_TOKEN=$(az account get-access-token --resource-type oss-rdbms --query accessToken -o tsv)
  local role
  role=$(psql_as_admin postgres "select 1 from pg_roles where rolname = '$IDENTITY'")
  if [ "$role" != 1 ]; then
    psql_as_admin postgres "select * from pgaadauth_create_principal('$IDENTITY', false, false);" >/dev/null
  fi
  # What the app needs and no more: it connects, runs its migrations at startup and owns the
  # tables it creates. PostgreSQL 15+ gives new roles no CREATE on schema public.
  psql_as_admin "$DB_NAME" "GRANT CONNECT ON DATABASE $DB_NAME TO \"$IDENTITY\"; GRANT USAGE, CREATE ON SCHEMA public TO \"$IDENTITY\";" >/dev/null
  PG_TOKEN=""
  close_temp_ip_rule
  run az tag update --resource-id "$SERVER_ID" --operation Merge --tags "$DBROLE_TAG=$IDENTITY" --output none
  created
}

ensure_storage() {
  step "Storage account $STORAGE (no public access, HTTPS only, TLS 1.2, no shared keys)"
  if exists az storage account show --resource-group "$RG" --name "$STORAGE"; then there; return; fi
  run az storage account create --resource-group "$RG" --name "$STORAGE" --location "$LOCATION" \
    --sku Standard_LRS --kind StorageV2 --allow-blob-public-access false --https-only true \
    --min-tls-version TLS1_2 --allow-shared-key-access false --output none
  created
}

ensure_container() {
  step "Blob container $CONTAINER_NAME (private)"
  if exists az storage container-rm show --resource-group "$RG" --storage-account "$STORAGE" \
    --name "$CONTAINER_NAME"; then there; return; fi
  # Through ARM (management plane): needs no data role for the person deploying.
  run az storage container-rm create --resource-group "$RG" --storage-account "$STORAGE" \
    --name "$CONTAINER_NAME" --public-access off --output none
  created
}

# ensure_role ROLE SCOPE: the identity gets ROLE on SCOPE (one resource, never the group).
ensure_role() {
  local role=$1 scope=$2
  step "Role $role for $IDENTITY on ${scope##*/}"
  local found=""
  $DRY_RUN || found=$(az role assignment list --scope "$scope" --role "$role" \
    --query "[?principalId=='$IDENTITY_PRINCIPAL_ID'].id" -o tsv)
  if [ -n "$found" ]; then there; return; fi
  # By object id and type: no directory lookup, no wait for the new identity to replicate.
  run az role assignment create --assignee-object-id "$IDENTITY_PRINCIPAL_ID" \
    --assignee-principal-type ServicePrincipal --role "$role" --scope "$scope" --output none
  created
}

# --- telemetry: Application Insights with Microsoft Entra authentication only ---------------

ensure_workspace() {
  step "Log Analytics workspace $WORKSPACE"
  if exists az monitor log-analytics workspace show --resource-group "$RG" --name "$WORKSPACE"; then there; return; fi
  run az monitor log-analytics workspace create --resource-group "$RG" --name "$WORKSPACE" \
    --location "$LOCATION" --retention-time 30 --output none
  created
}

ensure_app_insights() {
  step "Application Insights $APPI (workspace-based, local authentication disabled)"
  if exists az resource show --resource-group "$RG" --name "$APPI" \
    --resource-type microsoft.insights/components; then there
  else
    # The whole object: kind and location sit beside the properties.
    local body
    body=$(printf '{"kind":"web","location":"%s","properties":{"Application_Type":"web","WorkspaceResourceId":"%s","IngestionMode":"LogAnalytics","DisableLocalAuth":true}}' \
      "$LOCATION" "$WORKSPACE_ID")
    run az resource create --resource-group "$RG" --name "$APPI" \
      --resource-type microsoft.insights/components --is-full-object --properties "$body" --output none
    created
  fi
  APPI_CONNECTION=$(lookup '<application-insights-connection-string>' \
    az resource show --resource-group "$RG" --name "$APPI" \
    --resource-type microsoft.insights/components --query properties.ConnectionString -o tsv)
  [ -n "$APPI_CONNECTION" ] || die "Application Insights $APPI has no connection string"
}

ensure_plan() {
  step "App Service plan $PLAN (Linux, $SKU)"
  if exists az appservice plan show --resource-group "$RG" --name "$PLAN"; then there; return; fi
  run az appservice plan create --resource-group "$RG" --name "$PLAN" --location "$LOCATION" \
    --is-linux --sku "$SKU" --output none
  created
}

ensure_registry() {
  step "Container registry $REGISTRY (Basic, no admin user)"
  if exists az acr show --resource-group "$RG" --name "$REGISTRY"; then there; return; fi
  run az acr create --resource-group "$RG" --name "$REGISTRY" --location "$LOCATION" --sku Basic \
    --admin-enabled false --output none
  created
}

# The image tag names the source: the commit, plus a hash of uncommitted changes.
source_tag() {
  local head dirty
  head=$(git -C "$REPO_DIR" rev-parse --short=12 HEAD 2>/dev/null) || { date -u +%Y%m%d%H%M%S; return; }
  dirty=$(git -C "$REPO_DIR" status --porcelain --untracked-files=no 2>/dev/null)
  if [ -n "$dirty" ]; then
    printf '%s-%s' "$head" "$(short_hash "$(git -C "$REPO_DIR" diff HEAD 2>/dev/null)")"
  else
    printf '%s' "$head"
  fi
}

ensure_image() {
  IMAGE="$REGISTRY.azurecr.io/$IMAGE_REPO:$IMAGE_TAG"
  step "Image $IMAGE_REPO:$IMAGE_TAG (az acr build: built in Azure, no local Docker)"
  if exists az acr repository show --name "$REGISTRY" --image "$IMAGE_REPO:$IMAGE_TAG"; then there; return; fi
  run az acr build --registry "$REGISTRY" --image "$IMAGE_REPO:$IMAGE_TAG" \
    --file "$REPO_DIR/Dockerfile" "$REPO_DIR"
  created
}

ensure_webapp() {
  step "Web app $APP"
  if exists az webapp show --resource-group "$RG" --name "$APP"; then there; return; fi
  if $CONTAINER; then
    run az webapp create --resource-group "$RG" --plan "$PLAN" --name "$APP" \
      --container-image-name "$IMAGE" --acr-use-identity --acr-identity "$IDENTITY_ID" \
      --assign-identity "$IDENTITY_ID" --https-only true --basic-auth Disabled --output none
  else
    run az webapp create --resource-group "$RG" --plan "$PLAN" --name "$APP" --runtime "$RUNTIME" \
      --startup-file "$STARTUP_COMMAND" --assign-identity "$IDENTITY_ID" --https-only true \
      --basic-auth Disabled --output none
  fi
  created
}

ensure_webapp_identity() {
  step "Identity $IDENTITY on $APP"
  if $DRY_RUN; then echo "      # assigned by az webapp create --assign-identity"; return; fi
  local found=""
  # shellcheck disable=SC2016 # a JMESPath literal, not a shell expansion
  $DRY_RUN || found=$(az webapp identity show --resource-group "$RG" --name "$APP" \
    --query 'keys(userAssignedIdentities || `{}`)' -o tsv)
  if grep -qiE "/userAssignedIdentities/$IDENTITY\$" <<<"$found"; then there; return; fi
  run az webapp identity assign --resource-group "$RG" --name "$APP" --identities "$IDENTITY_ID" --output none
  created
}

ensure_webapp_config() {
  local last_name=appCommandLine want_last=$STARTUP_COMMAND what="startup command"
  if $CONTAINER; then last_name=linuxFxVersion want_last="DOCKER|$IMAGE" what=image; fi
  step "Web app configuration (HTTPS only, FTP off, health check $HEALTH_PATH, $what)"
  # Fresh from `az webapp create --https-only true` when planning a dry run.
  local https=true ftps="" health="" last=""
  local -a cfg=()
  $DRY_RUN && $CONTAINER && last=$want_last
  if ! $DRY_RUN; then
    https=$(az webapp show --resource-group "$RG" --name "$APP" --query httpsOnly -o tsv)
    mapfile -t cfg < <(az webapp config show --resource-group "$RG" --name "$APP" \
      --query "[ftpsState, healthCheckPath, $last_name]" -o tsv)
    ftps=${cfg[0]:-} health=${cfg[1]:-} last=${cfg[2]:-}
  fi
  if [ "${https,,}" = true ] && [ "$ftps" = Disabled ] && [ "$health" = "$HEALTH_PATH" ] && [ "$last" = "$want_last" ]; then
    there; return
  fi
  [ "${https,,}" = true ] || run az webapp update --resource-group "$RG" --name "$APP" --https-only true --output none
  if [ "$ftps" != Disabled ] || [ "$health" != "$HEALTH_PATH" ] || { ! $CONTAINER && [ "$last" != "$want_last" ]; }; then
    run az webapp config set --resource-group "$RG" --name "$APP" --ftps-state Disabled \
      --generic-configurations "{\"healthCheckPath\": \"$HEALTH_PATH\"}" "${STARTUP_ARGS[@]}" --output none
  fi
  if $CONTAINER && [ "$last" != "$want_last" ]; then
    run az webapp config container set --resource-group "$RG" --name "$APP" \
      --container-image-name "$IMAGE" --output none
  fi
  done_ updated
}

ensure_app_settings() {
  step "App settings (AZURE_CLIENT_ID, STORAGE_*, DB*, PHOTO_URL_MODE, WEBSITES_PORT, APPLICATIONINSIGHTS_*)"
  local -a want=(
    "AZURE_CLIENT_ID=$IDENTITY_CLIENT_ID"
    "STORAGE_ACCOUNT_NAME=$STORAGE"
    "STORAGE_CONTAINER_NAME=$CONTAINER_NAME"
    "DBHOST=$SERVER"
    "DBNAME=$DB_NAME"
    "DBUSER=$IDENTITY"
    "PHOTO_URL_MODE=sas"
    "WEBSITES_PORT=8000"
    "SCM_DO_BUILD_DURING_DEPLOYMENT=false"
    # Telemetry signs in with the same identity (bearer token, never the key alone).
    "APPLICATIONINSIGHTS_CONNECTION_STRING=$APPI_CONNECTION"
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD;ClientId=$IDENTITY_CLIENT_ID"
  )
  local current="" setting missing=()
  $DRY_RUN || current=$(az webapp config appsettings list --resource-group "$RG" --name "$APP" \
    --query "[].join('=', [name, value])" -o tsv)
  for setting in "${want[@]}"; do
    grep -qxF -- "$setting" <<<"$current" || missing+=("$setting")
  done
  if [ "${#missing[@]}" -eq 0 ]; then there; return; fi
  run az webapp config appsettings set --resource-group "$RG" --name "$APP" \
    --settings "${missing[@]}" --output none
  if $DRY_RUN || [ -z "$current" ]; then created; else done_ "updated (${#missing[@]} changed)"; fi
}

build_package() {
  if [ -n "$ZIP" ]; then
    [ -f "$ZIP" ] || die "--zip $ZIP: no such file"
    return 0
  fi
  ZIP="$REPO_DIR/target/deploy/restaurant-review.zip"
  if $DRY_RUN; then print_cmd deploy/package.sh; return 0; fi
  echo "Building the package (deploy/package.sh) ..."
  "$SCRIPT_DIR/package.sh" >&2
}

ensure_deployed() {
  step "Deploy $(basename "$ZIP")"
  local sum="<package-sha256>" deployed=""
  $DRY_RUN || sum=$(file_hash "$ZIP")
  $DRY_RUN || deployed=$(az webapp show --resource-group "$RG" --name "$APP" \
    --query "tags.\"$PACKAGE_TAG\"" -o tsv)
  if [ "$deployed" = "$sum" ]; then there; return; fi
  run az webapp deploy --resource-group "$RG" --name "$APP" --src-path "$ZIP" --type zip --output none
  run az tag update --resource-id "$APP_ID" --operation Merge --tags "$PACKAGE_TAG=$sum" --output none
  done_ "deployed ($sum)"
}

# --- moderators (deploy/moderators.sh) ----------------------------------------------------
# shellcheck source=deploy/moderators.sh
source "$SCRIPT_DIR/moderators.sh"

# --- commands ----------------------------------------------------------------------------

validate_prefix() {
  [ -n "$PREFIX" ] || die "--name PREFIX is required (see --help)"
  [[ $PREFIX =~ ^[a-z][a-z0-9-]{1,14}[a-z0-9]$ ]] \
    || die "--name '$PREFIX': use 3-16 lowercase letters, digits and hyphens, starting with a letter"
}

cmd_up() {
  validate_prefix
  [ -n "$LOCATION" ] || die "--location is required, e.g. --location westeurope (az account list-locations -o table)"
  [[ $SKU =~ ^[A-Za-z0-9]+$ ]] || die "--sku '$SKU' is not a plan SKU (B1, B2, P0v3, ...)"
  if [ -n "$MY_IP" ] && ! [[ $MY_IP =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then die "--my-ip '$MY_IP' is not an IPv4 address"; fi
  preflight
  derive_names
  STARTUP_ARGS=()
  $CONTAINER || STARTUP_ARGS=(--startup-file "$STARTUP_COMMAND")
  if $CONTAINER; then IMAGE_TAG=$(source_tag); else build_package; fi
  TOTAL=19
  $CONTAINER && TOTAL=21
  $KEEP_MY_IP && TOTAL=$((TOTAL + 1))
  [ "${#MODERATOR_USERS[@]}" -gt 0 ] && TOTAL=$((TOTAL + 3))
  trap close_temp_ip_rule EXIT

  ensure_group
  ensure_identity
  ensure_server
  ensure_entra_admin
  ensure_azure_services_rule
  ensure_database
  if $KEEP_MY_IP; then ensure_kept_ip_rule; fi
  ensure_db_role
  ensure_storage
  ensure_container
  ensure_role "$BLOB_ROLE" "$STORAGE_ID"
  ensure_workspace
  ensure_app_insights
  ensure_role "$MONITOR_ROLE" "$APPI_ID"
  ensure_plan
  if $CONTAINER; then
    ensure_registry
    ensure_image
    ensure_role "$PULL_ROLE" "$REGISTRY_ID"
  fi
  ensure_webapp
  ensure_webapp_identity
  ensure_webapp_config
  ensure_app_settings
  if ! $CONTAINER; then ensure_deployed; fi
  # Last, so that a tenant where app registrations are not allowed still gets the rest.
  if [ "${#MODERATOR_USERS[@]}" -gt 0 ]; then ensure_moderation; fi

  echo "Done. The app runs its migrations at startup; the first start takes a minute or two."
  echo "Diagnose in the SSH console (az webapp ssh -g $RG -n $APP): $APP_BINARY doctor"
  echo "https://$APP.azurewebsites.net"
}

cmd_down() {
  validate_prefix
  if $DRY_RUN; then
    SUBSCRIPTION_ID=${SUBSCRIPTION:-00000000-0000-0000-0000-000000000000}
  else
    command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
    SUBSCRIPTION_ID=$(az account show --query id -o tsv 2>/dev/null) || die "not signed in to Azure: run 'az login'"
  fi
  derive_names
  if ! $DRY_RUN && ! exists az group show --name "$RG"; then
    echo "Resource group $RG does not exist in subscription $SUBSCRIPTION_ID: nothing to delete."
    return 0
  fi
  if ! $YES && ! $DRY_RUN; then
    [ -t 0 ] || die "refusing to delete resource group $RG without confirmation: no terminal to ask on; pass --yes"
    local answer
    read -r -p "Delete resource group $RG and everything in it (database, photos, app) in subscription $SUBSCRIPTION_ID? Type the group name to confirm: " answer
    [ "$answer" = "$RG" ] || die "not confirmed; nothing deleted"
  fi
  local -a wait=()
  $NO_WAIT && wait=(--no-wait)
  echo "Deleting resource group $RG (takes several minutes) ..."
  run az group delete --name "$RG" --yes "${wait[@]}"
  if $NO_WAIT; then echo "Deletion of $RG started."; else echo "Deleted resource group $RG."; fi
}

main() {
  local command=${1:-}
  case "$command" in
    up | down) shift ;;
    -h | --help | help) usage; return 0 ;;
    "") usage >&2; exit 2 ;;
    *) die "unknown command '$command' (up, down or --help)" ;;
  esac
  PREFIX="" LOCATION="" SKU=B1 MY_IP="" ZIP="" SUBSCRIPTION=""
  KEEP_MY_IP=false CONTAINER=false YES=false NO_WAIT=false
  MODERATOR_USERS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) PREFIX=${2:?--name needs a value}; shift ;;
      --location) LOCATION=${2:?--location needs a value}; shift ;;
      --sku) SKU=${2:?--sku needs a value}; shift ;;
      --my-ip) MY_IP=${2:?--my-ip needs a value}; shift ;;
      --zip) ZIP=${2:?--zip needs a value}; shift ;;
      --subscription) SUBSCRIPTION=${2:?--subscription needs a value}; shift ;;
      --moderator) MODERATOR_USERS+=("${2:?--moderator needs a user principal name or object id}"); shift ;;
      --keep-my-ip) KEEP_MY_IP=true ;;
      --container) CONTAINER=true ;;
      --dry-run) DRY_RUN=true ;;
      --verbose) VERBOSE=true ;;
      --yes | -y) YES=true ;;
      --no-wait) NO_WAIT=true ;;
      -h | --help) usage; return 0 ;;
      *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
  done
  "cmd_$command"
}

# fd 3 is the terminal's stdout, for what a dry run prints from inside $(...).
exec 3>&1
main "$@"
