# deploy/moderators.sh — sourced by deploy/azure.sh for `up --moderator UPN|OBJECT-ID` (repeatable):
# moderators sign in with Microsoft Entra ID through App Service's built-in authentication,
# with no client secret anywhere (sign-in with ID tokens), and visitors stay anonymous.
#
#   app registration   restaurant-review-PREFIX: single tenant, the site's /.auth callback,
#                      ID tokens on, a `Moderator` app role; its service principal
#   role assignments   the Moderator role for each --moderator (Microsoft Graph via az rest:
#                      az has no command for app role assignments)
#   authentication     App Service authentication on, anonymous requests allowed, Microsoft
#                      Entra ID with that registration's client id and no secret; MODERATORS
#                      set to the moderators' object ids
#
# A user who may not create app registrations gets a clear message; the rest of the deployment
# has completed by then, and moderation works through `restaurant-review moderate` in the SSH
# console.
# shellcheck shell=bash

# Fixed, so reruns find the role they made (app role ids are chosen by whoever defines them).
readonly MODERATOR_ROLE_ID=5f0c9c3e-2a8e-4b8f-9a6c-4d1e7b2a9c10
readonly GRAPH=https://graph.microsoft.com/v1.0

is_object_id() {
  [[ ${1,,} =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]
}

# The object ids of the --moderator users (an object id is taken as it is).
resolve_moderators() {
  MODERATOR_IDS=()
  local who id
  for who in "${MODERATOR_USERS[@]}"; do
    if is_object_id "$who"; then
      MODERATOR_IDS+=("${who,,}")
      continue
    fi
    id=$(lookup "<object-id-of-$who>" az ad user show --id "$who" --query id -o tsv) \
      || die "--moderator $who: no such user in this tenant (give a user principal name or an object id)"
    [ -n "$id" ] || die "--moderator $who: no such user in this tenant"
    MODERATOR_IDS+=("$id")
  done
}

app_roles_file() {
  local file=$1
  cat >"$file" <<JSON
[{"allowedMemberTypes": ["User"], "description": "Moderates restaurant-review: hides, deletes and edits content.",
  "displayName": "Moderator", "id": "$MODERATOR_ROLE_ID", "isEnabled": true, "value": "Moderator"}]
JSON
}

ensure_app_registration() {
  step "App registration $AUTH_APP (moderator sign-in, Moderator app role, no secret)"
  $DRY_RUN && echo
  resolve_moderators
  AUTH_APP_ID=""
  $DRY_RUN || AUTH_APP_ID=$(az ad app list --display-name "$AUTH_APP" --query "[0].appId" -o tsv)
  if [ -n "$AUTH_APP_ID" ]; then there
  else
    local roles=app-roles.json err=""
    if $DRY_RUN; then
      echo "      # app-roles.json: the Moderator role, id $MODERATOR_ROLE_ID, for users"
    else
      roles="$WORK_DIR/app-roles.json" err="$WORK_DIR/app-create.err"
      app_roles_file "$roles"
    fi
    local -a create=(az ad app create --display-name "$AUTH_APP" --sign-in-audience AzureADMyOrg
      --web-redirect-uris "https://$APP.azurewebsites.net/.auth/login/aad/callback"
      --enable-id-token-issuance true --app-roles "@$roles" --query appId -o tsv)
    if $DRY_RUN; then
      printf '%s    # -> <app-id>\n' "$(print_cmd "${create[@]}")"
      AUTH_APP_ID="<app-id>"
      created
    elif ! AUTH_APP_ID=$("${create[@]}" 2>"$err"); then
      if grep -qiE 'Authorization_RequestDenied|Insufficient privileges|not allowed|Forbidden' "$err"; then
        done_ "not allowed"
        MODERATION_SKIPPED=true
        echo "      You may not create app registrations in this tenant, so moderators cannot sign in" >&2
        echo "      with Microsoft Entra ID yet. Everything else is deployed. Moderate meanwhile in" >&2
        echo "      the SSH console: az webapp ssh -g $RG -n $APP, then $APP_BINARY moderate reports." >&2
        echo "      Ask an administrator to run this command again, or to let you register apps." >&2
        return 0
      fi
      cat "$err" >&2
      die "could not create the app registration $AUTH_APP"
    else
      created
    fi
  fi
  if $DRY_RUN; then
    printf '%s    # -> <service-principal-id>\n' "$(print_cmd az ad sp create --id "$AUTH_APP_ID" --query id -o tsv)"
    AUTH_SP_ID="<service-principal-id>"
    return 0
  fi
  AUTH_SP_ID=$(az ad sp list --filter "appId eq '$AUTH_APP_ID'" --query "[0].id" -o tsv)
  [ -n "$AUTH_SP_ID" ] || AUTH_SP_ID=$(az ad sp create --id "$AUTH_APP_ID" --query id -o tsv)
  [ -n "$AUTH_SP_ID" ] || die "the app registration $AUTH_APP has no service principal"
}

ensure_moderator_roles() {
  step "Moderator app role for ${#MODERATOR_IDS[@]} user(s)"
  local assigned="" id missing=()
  $DRY_RUN || assigned=$(az rest --method get --uri "$GRAPH/servicePrincipals/$AUTH_SP_ID/appRoleAssignedTo" \
    --query "value[?appRoleId=='$MODERATOR_ROLE_ID'].principalId" -o tsv)
  for id in "${MODERATOR_IDS[@]}"; do
    grep -qixF -- "$id" <<<"$assigned" || missing+=("$id")
  done
  if [ "${#missing[@]}" -eq 0 ]; then there; return; fi
  for id in "${missing[@]}"; do
    run az rest --method post --uri "$GRAPH/servicePrincipals/$AUTH_SP_ID/appRoleAssignedTo" \
      --headers Content-Type=application/json \
      --body "{\"principalId\": \"$id\", \"resourceId\": \"$AUTH_SP_ID\", \"appRoleId\": \"$MODERATOR_ROLE_ID\"}" \
      --output none
  done
  created
}

ensure_app_service_auth() {
  step "App Service authentication (Microsoft Entra ID, no secret, anonymous visitors) and MODERATORS"
  local tenant="<tenant-id>" current=""
  tenant=$(lookup "<tenant-id>" az account show --query tenantId -o tsv)
  $DRY_RUN || current=$(az webapp auth show --resource-group "$RG" --name "$APP" \
    --query "[enabled, unauthenticatedClientAction, clientId]" -o tsv | tr '\t\n' '  ')
  local want_ids
  want_ids=$(IFS=,; printf '%s' "${MODERATOR_IDS[*]}")
  local settings=""
  $DRY_RUN || settings=$(az webapp config appsettings list --resource-group "$RG" --name "$APP" \
    --query "[?name=='MODERATORS'].value" -o tsv)
  if [ "${current,,}" = "true allowanonymous ${AUTH_APP_ID,,} " ] && [ "$settings" = "$want_ids" ]; then there; return; fi
  # The core CLI's command (the v2 ones need the authV2 extension). No --aad-client-secret:
  # sign-in with ID tokens only, so there is no secret to keep or rotate.
  run az webapp auth update --resource-group "$RG" --name "$APP" --enabled true --action AllowAnonymous \
    --aad-client-id "$AUTH_APP_ID" --aad-token-issuer-url "https://login.microsoftonline.com/$tenant/v2.0" \
    --output none
  run az webapp config appsettings set --resource-group "$RG" --name "$APP" \
    --settings "MODERATORS=$want_ids" --output none
  done_ updated
}

ensure_moderation() {
  MODERATION_SKIPPED=false
  AUTH_APP="restaurant-review-$PREFIX"
  WORK_DIR=""
  $DRY_RUN || WORK_DIR=$(mktemp -d)
  ensure_app_registration
  if ! $MODERATION_SKIPPED; then
    ensure_moderator_roles
    ensure_app_service_auth
  fi
  [ -z "$WORK_DIR" ] || rm -rf "$WORK_DIR"
}
