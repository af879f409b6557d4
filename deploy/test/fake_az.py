"""A stand-in for the Azure CLI, for deploy/test/run.sh.

Every call is appended to $FAKE_AZ_LOG (argv, shell-quoted, one line). Resources that a create
made exist afterwards (state in $FAKE_AZ_STATE/state.json): show finds them, and a missing one
answers as the real CLI does, exit code 3 and "(ResourceNotFound)" on stderr. Answers are JSON
shaped like the real CLI's (camelCase), filtered with the real JMESPath library for --query and
printed as -o json/tsv/none the way knack prints them.

Also runs as `psql` (when argv[0] ends in psql): logs the call, checks PGPASSWORD is the token
`az account get-access-token` handed out, and keeps the roles it was asked to create.
"""
import json
import os
import shlex
import sys

import jmespath

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "99999999-8888-7777-6666-555555555555"
USER_ID = "aaaaaaaa-0000-0000-0000-000000000001"
USER_UPN = "dev@contoso.example"
TOKEN = "FAKE-ENTRA-TOKEN-d0-not-print-me-7f3a"
STATE_DIR = os.environ["FAKE_AZ_STATE"]
STATE_FILE = os.path.join(STATE_DIR, "state.json")


def load():
    try:
        with open(STATE_FILE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(state):
    with open(STATE_FILE, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)


def log(argv):
    with open(os.environ["FAKE_AZ_LOG"], "a") as f:
        f.write(shlex.join(argv) + "\n")


def parse(args):
    """Split argv into the command words and {flag: [values]}."""
    words, opts, i = [], {}, 0
    while i < len(args) and not args[i].startswith("-"):
        words.append(args[i])
        i += 1
    flag = None
    for a in args[i:]:
        if a.startswith("-") and len(a) > 1 and not a[1].isdigit():
            flag = a
            opts.setdefault(flag, [])
        elif flag is not None:
            opts[flag].append(a)
        else:
            words.append(a)
    return words, opts


class NotFound(Exception):
    pass


class Fail(Exception):
    pass


def one(opts, *names, default=None):
    for n in names:
        if n in opts:
            vals = opts[n]
            return vals[0] if vals else True
    if default is not None:
        return default
    raise Fail(f"the following arguments are required: {'/'.join(names)}")


def rid(rg, provider, name):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/{provider}/{name}"


def not_found(kind, name):
    raise NotFound(f"(ResourceNotFound) The Resource '{kind}/{name}' was not found.")


class Az:
    def __init__(self, state, opts):
        self.s = state
        self.o = opts

    # helpers
    def rg(self, must_exist=True):
        rg = one(self.o, "--resource-group", "-g")
        if must_exist and rg not in self.s.get("groups", {}):
            raise NotFound(f"(ResourceGroupNotFound) Resource group '{rg}' could not be found.")
        return rg

    def table(self, kind):
        return self.s.setdefault(kind, {})

    def get(self, kind, key, label=None):
        item = self.table(kind).get(key)
        if item is None:
            not_found(label or kind, key)
        return item

    def create(self, kind, key, value):
        table = self.table(kind)
        if key in table:
            # Real creates mostly update in place; a second create is what the test forbids.
            value = {**table[key], **value}
        table[key] = value
        return value

    # commands
    def account_show(self):
        return {"id": SUB, "tenantId": TENANT, "name": "Fake subscription",
                "user": {"name": USER_UPN, "type": "user"}, "state": "Enabled", "isDefault": True}

    def account_get_access_token(self):
        assert one(self.o, "--resource-type") == "oss-rdbms"
        return {"accessToken": TOKEN, "expiresOn": "2099-01-01 00:00:00.000000",
                "subscription": SUB, "tenant": TENANT, "tokenType": "Bearer"}

    def ad_signed_in_user_show(self):
        return {"id": USER_ID, "userPrincipalName": USER_UPN, "displayName": "Dev"}

    # Moderator sign-in (deploy/moderators.sh): users, app registrations, service principals,
    # Graph's app role assignments through az rest, and App Service authentication.
    def ad_user_show(self):
        who = one(self.o, "--id")
        users = {"ada@contoso.example": "aaaaaaaa-0000-0000-0000-00000000000a"}
        if who not in users:
            raise NotFound(f"Resource '{who}' does not exist or one of its queried reference-property objects are not present.")
        return {"id": users[who], "userPrincipalName": who}

    def ad_app_list(self):
        name = one(self.o, "--display-name")
        return [a for a in self.table("apps").values() if a["displayName"] == name]

    def ad_app_create(self):
        if os.environ.get("FAKE_AZ_DENY_APPS"):
            raise Fail("Insufficient privileges to complete the operation. (Authorization_RequestDenied)")
        name = one(self.o, "--display-name")
        roles_arg = one(self.o, "--app-roles")
        assert roles_arg.startswith("@"), roles_arg
        with open(roles_arg[1:]) as f:
            roles = json.load(f)
        assert "--password" not in self.o and "--credential-description" not in self.o
        app_id = f"a99a0000-0000-0000-0000-{len(self.table('apps')):012d}"
        return self.create("apps", app_id, {
            "appId": app_id, "displayName": name, "appRoles": roles,
            "signInAudience": one(self.o, "--sign-in-audience"),
            "web": {"redirectUris": self.o.get("--web-redirect-uris", []),
                    "implicitGrantSettings": {"enableIdTokenIssuance": one(self.o, "--enable-id-token-issuance") == "true"}},
            "passwordCredentials": []})

    def ad_sp_list(self):
        app_id = one(self.o, "--filter").split("'")[1]
        return [p for p in self.table("sps").values() if p["appId"] == app_id]

    def ad_sp_create(self):
        app_id = one(self.o, "--id")
        self.get("apps", app_id, "application")
        sp_id = "5e000000-0000-0000-0000-" + app_id[-12:]
        return self.create("sps", sp_id, {"id": sp_id, "appId": app_id, "assignments": []})

    def rest(self):
        uri, method = one(self.o, "--uri", "-u"), one(self.o, "--method", "-m").lower()
        sp_id = uri.split("/servicePrincipals/")[1].split("/")[0]
        sp = self.get("sps", sp_id, "servicePrincipal")
        if method == "get":
            return {"value": sp["assignments"]}
        body = json.loads(one(self.o, "--body", "-b"))
        assert body["resourceId"] == sp_id
        sp["assignments"].append(body)
        return body

    def webapp_auth_show(self):
        return self.app().get("auth", {"enabled": False, "unauthenticatedClientAction": None, "clientId": None})

    def webapp_auth_update(self):
        assert "--aad-client-secret" not in self.o and "--thumbprint" not in self.o
        auth = {"enabled": one(self.o, "--enabled") == "true", "unauthenticatedClientAction": one(self.o, "--action"),
                "clientId": one(self.o, "--aad-client-id"), "issuer": one(self.o, "--aad-token-issuer-url")}
        self.app()["auth"] = auth
        return auth

    def group_show(self):
        name = one(self.o, "--name", "-n")
        if name not in self.table("groups"):
            raise NotFound(f"(ResourceGroupNotFound) Resource group '{name}' could not be found.")
        return self.table("groups")[name]

    def group_create(self):
        name = one(self.o, "--name", "-n")
        return self.create("groups", name, {
            "id": f"/subscriptions/{SUB}/resourceGroups/{name}", "name": name,
            "location": one(self.o, "--location", "-l"), "properties": {"provisioningState": "Succeeded"}})

    def group_delete(self):
        name = one(self.o, "--name", "-n")
        self.group_show()
        inside = f"/resourceGroups/{name}/"
        for kind, table in self.s.items():
            if kind == "groups" or not isinstance(table, dict):
                continue
            for key in [k for k, v in table.items()
                        if v.get("resourceGroup") == name or inside in v.get("scope", "")]:
                del table[key]
        del self.table("groups")[name]
        return None

    def identity_show(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        return self.get("identities", f"{rg}/{name}", "Microsoft.ManagedIdentity/userAssignedIdentities")

    def identity_create(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        n = len(self.table("identities")) + 1
        return self.create("identities", f"{rg}/{name}", {
            "id": rid(rg, "Microsoft.ManagedIdentity/userAssignedIdentities", name), "name": name,
            "resourceGroup": rg, "location": one(self.o, "--location", "-l", default="x"),
            "clientId": f"c11e0000-0000-0000-0000-00000000000{n}",
            "principalId": f"b0b00000-0000-0000-0000-00000000000{n}", "tenantId": TENANT})

    def server(self, flag=("--name", "-n")):
        rg, name = self.rg(), one(self.o, *flag)
        return rg, name, self.get("servers", f"{rg}/{name}", "Microsoft.DBforPostgreSQL/flexibleServers")

    def postgres_flexible_server_show(self):
        return self.server()[2]

    def postgres_flexible_server_create(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        if "--admin-password" in self.o or "-p" in self.o:
            raise Fail("the fake refuses admin passwords")
        return self.create("servers", f"{rg}/{name}", {
            "id": rid(rg, "Microsoft.DBforPostgreSQL/flexibleServers", name), "name": name,
            "resourceGroup": rg, "fullyQualifiedDomainName": f"{name}.postgres.database.azure.com",
            "version": one(self.o, "--version"), "tags": None,
            "sku": {"name": one(self.o, "--sku-name"), "tier": one(self.o, "--tier")},
            "authConfig": {"activeDirectoryAuth": one(self.o, "--microsoft-entra-auth"),
                           "passwordAuth": one(self.o, "--password-auth")},
            "admins": [], "firewall": {}, "databases": {}})

    def postgres_flexible_server_microsoft_entra_admin_list(self):
        return self.server(("--server-name", "-s"))[2]["admins"]

    def postgres_flexible_server_microsoft_entra_admin_create(self):
        srv = self.server(("--server-name", "-s"))[2]
        oid = one(self.o, "--object-id", "-i")
        srv["admins"] = [a for a in srv["admins"] if a["objectId"] != oid] + [{
            "objectId": oid, "principalName": one(self.o, "--display-name", "-u"),
            "principalType": one(self.o, "--type", "-t"), "tenantId": TENANT}]
        return srv["admins"][-1]

    def rule(self):
        srv = self.server(("--server-name", "-s"))[2]
        return srv, one(self.o, "--name", "-n")

    def postgres_flexible_server_firewall_rule_show(self):
        srv, name = self.rule()
        if name not in srv["firewall"]:
            not_found("firewallRules", name)
        return srv["firewall"][name]

    def postgres_flexible_server_firewall_rule_create(self):
        srv, name = self.rule()
        srv["firewall"][name] = {"name": name, "startIpAddress": one(self.o, "--start-ip-address"),
                                 "endIpAddress": one(self.o, "--end-ip-address")}
        return srv["firewall"][name]

    postgres_flexible_server_firewall_rule_update = postgres_flexible_server_firewall_rule_create

    def postgres_flexible_server_firewall_rule_delete(self):
        srv, name = self.rule()
        if name not in srv["firewall"]:
            not_found("firewallRules", name)
        del srv["firewall"][name]

    def postgres_flexible_server_db_show(self):
        srv, name = self.rule()
        if name not in srv["databases"]:
            not_found("databases", name)
        return srv["databases"][name]

    def postgres_flexible_server_db_create(self):
        srv, name = self.rule()
        srv["databases"][name] = {"name": name, "charset": "UTF8", "collation": "en_US.utf8"}
        return srv["databases"][name]

    def storage_account_show(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        return self.get("storage", f"{rg}/{name}", "Microsoft.Storage/storageAccounts")

    def storage_account_create(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        return self.create("storage", f"{rg}/{name}", {
            "id": rid(rg, "Microsoft.Storage/storageAccounts", name), "name": name, "resourceGroup": rg,
            "allowBlobPublicAccess": one(self.o, "--allow-blob-public-access") == "true",
            "enableHttpsTrafficOnly": one(self.o, "--https-only") == "true",
            "minimumTlsVersion": one(self.o, "--min-tls-version"),
            "primaryEndpoints": {"blob": f"https://{name}.blob.core.windows.net/"}, "containers": {}})

    def container(self):
        rg = self.rg()
        acct = self.get("storage", f"{rg}/{one(self.o, '--storage-account')}", "storageAccounts")
        return acct, one(self.o, "--name", "-n")

    def storage_container_rm_show(self):
        acct, name = self.container()
        if name not in acct["containers"]:
            not_found("blobServices/default/containers", name)
        return acct["containers"][name]

    def storage_container_rm_create(self):
        acct, name = self.container()
        acct["containers"][name] = {"name": name, "publicAccess": "None"}
        return acct["containers"][name]

    def role_assignment_list(self):
        scope, role = one(self.o, "--scope"), one(self.o, "--role")
        return [a for a in self.table("roles").values()
                if a["scope"] == scope and a["roleDefinitionName"] == role]

    def role_assignment_create(self):
        a = {"principalId": one(self.o, "--assignee-object-id"),
             "principalType": one(self.o, "--assignee-principal-type"),
             "roleDefinitionName": one(self.o, "--role"), "scope": one(self.o, "--scope")}
        key = "|".join([a["principalId"], a["roleDefinitionName"], a["scope"]])
        a["id"] = a["scope"] + "/providers/Microsoft.Authorization/roleAssignments/" + str(len(self.table("roles")))
        return self.create("roles", key, a)

    def monitor_log_analytics_workspace_show(self):
        rg, name = self.rg(), one(self.o, "--name", "-n", "--workspace-name")
        return self.get("workspaces", f"{rg}/{name}", "Microsoft.OperationalInsights/workspaces")

    def monitor_log_analytics_workspace_create(self):
        rg, name = self.rg(), one(self.o, "--name", "-n", "--workspace-name")
        return self.create("workspaces", f"{rg}/{name}", {
            "id": rid(rg, "Microsoft.OperationalInsights/workspaces", name), "name": name,
            "resourceGroup": rg, "retentionInDays": int(one(self.o, "--retention-time"))})

    def component(self):
        assert one(self.o, "--resource-type").lower() == "microsoft.insights/components"
        return self.rg(), one(self.o, "--name", "-n")

    def resource_show(self):
        rg, name = self.component()
        return self.get("components", f"{rg}/{name}", "microsoft.insights/components")

    def resource_create(self):
        rg, name = self.component()
        assert "--is-full-object" in self.o
        body = json.loads(one(self.o, "--properties", "-p"))
        props = body["properties"]
        # What the issue asks of the component: workspace-based, Entra-only ingestion.
        assert props["DisableLocalAuth"] is True, "local authentication must be disabled"
        self.get("workspaces", f"{rg}/{props['WorkspaceResourceId'].rsplit('/', 1)[1]}", "workspaces")
        key = "0aa1b2c3-0000-4000-8000-00000000a1a1"
        props = {**props, "InstrumentationKey": key, "ConnectionString":
                 f"InstrumentationKey={key};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;"
                 "LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/"}
        return self.create("components", f"{rg}/{name}", {
            "id": rid(rg, "microsoft.insights/components", name), "name": name,
            "kind": body["kind"], "location": body["location"], "properties": props})

    def appservice_plan_show(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        return self.get("plans", f"{rg}/{name}", "Microsoft.Web/serverFarms")

    def appservice_plan_create(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        assert "--is-linux" in self.o
        return self.create("plans", f"{rg}/{name}", {
            "id": rid(rg, "Microsoft.Web/serverFarms", name), "name": name, "resourceGroup": rg,
            "kind": "linux", "reserved": True, "sku": {"name": one(self.o, "--sku")}})

    def app(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        return self.get("webapps", f"{rg}/{name}", "Microsoft.Web/sites")

    def webapp_show(self):
        return self.app()

    def webapp_create(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        self.get("plans", f"{rg}/{one(self.o, '--plan', '-p')}", "Microsoft.Web/serverFarms")
        idents = self.o.get("--assign-identity", [])
        image = self.o.get("--container-image-name", self.o.get("-c", []))
        app = {
            "id": rid(rg, "Microsoft.Web/sites", name), "name": name, "resourceGroup": rg,
            "defaultHostName": f"{name}.azurewebsites.net", "tags": None,
            "httpsOnly": one(self.o, "--https-only", default="false") == "true",
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {
                i: {"clientId": "x", "principalId": "y"} for i in idents}} if idents else None,
            "config": {"ftpsState": "FtpsOnly", "healthCheckPath": None,
                       "appCommandLine": one(self.o, "--startup-file", default=""),
                       "linuxFxVersion": f"DOCKER|{image[0]}" if image else
                       one(self.o, "--runtime", "-r").replace(":", "|"),
                       "acrUseManagedIdentityCreds": "--acr-use-identity" in self.o,
                       "acrUserManagedIdentityID": one(self.o, "--acr-identity", default="")},
            "settings": {}}
        return self.create("webapps", f"{rg}/{name}", app)

    def webapp_update(self):
        app = self.app()
        if "--https-only" in self.o:
            app["httpsOnly"] = one(self.o, "--https-only") == "true"
        return app

    def webapp_identity_show(self):
        return self.app()["identity"]

    def webapp_identity_assign(self):
        app = self.app()
        ident = app["identity"] or {"type": "UserAssigned", "userAssignedIdentities": {}}
        for i in self.o["--identities"]:
            ident["userAssignedIdentities"][i] = {"clientId": "x", "principalId": "y"}
        app["identity"] = ident
        return ident

    def webapp_config_show(self):
        return self.app()["config"]

    def webapp_config_set(self):
        cfg = self.app()["config"]
        if "--ftps-state" in self.o:
            cfg["ftpsState"] = one(self.o, "--ftps-state")
        if "--startup-file" in self.o:
            cfg["appCommandLine"] = one(self.o, "--startup-file")
        for g in self.o.get("--generic-configurations", []):
            cfg.update(json.loads(g))
        return cfg

    def webapp_config_container_set(self):
        cfg = self.app()["config"]
        cfg["linuxFxVersion"] = "DOCKER|" + one(self.o, "--container-image-name", "-c")
        return []

    def webapp_config_appsettings_list(self):
        return [{"name": k, "value": v, "slotSetting": False} for k, v in self.app()["settings"].items()]

    def webapp_config_appsettings_set(self):
        app = self.app()
        for kv in self.o["--settings"]:
            k, _, v = kv.partition("=")
            app["settings"][k] = v
        return self.webapp_config_appsettings_list()

    def webapp_deploy(self):
        app = self.app()
        src = one(self.o, "--src-path")
        assert os.path.isfile(src), src
        assert one(self.o, "--type") == "zip"
        app["deployed"] = src

    def tag_update(self):
        target = one(self.o, "--resource-id")
        for kind in ("servers", "webapps"):
            for item in self.table(kind).values():
                if item["id"] == target:
                    tags = item["tags"] or {}
                    for kv in self.o["--tags"]:
                        k, _, v = kv.partition("=")
                        tags[k] = v
                    item["tags"] = tags
                    return {"properties": {"tags": tags}}
        not_found("resource", target)

    def acr_show(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        return self.get("registries", f"{rg}/{name}", "Microsoft.ContainerRegistry/registries")

    def acr_create(self):
        rg, name = self.rg(), one(self.o, "--name", "-n")
        return self.create("registries", f"{rg}/{name}", {
            "id": rid(rg, "Microsoft.ContainerRegistry/registries", name), "name": name,
            "resourceGroup": rg, "adminUserEnabled": one(self.o, "--admin-enabled") == "true",
            "loginServer": f"{name}.azurecr.io", "sku": {"name": one(self.o, "--sku")}, "images": []})

    def registry(self, flag):
        name = one(self.o, *flag)
        for r in self.table("registries").values():
            if r["name"] == name:
                return r
        not_found("Microsoft.ContainerRegistry/registries", name)

    def acr_build(self):
        reg = self.registry(("--registry", "-r"))
        reg["images"].append(one(self.o, "--image", "-t"))
        print("Run ID: ca1 was successful after 1m2s", file=sys.stderr)

    def acr_repository_show(self):
        reg = self.registry(("--name", "-n"))
        image = one(self.o, "--image", "-t")
        if image not in reg["images"]:
            raise NotFound(f"Error: manifest unknown: {image} not found")  # real: exit 1/3
        return {"name": image}


def tsv(result):
    """knack's -o tsv: a list prints one row per item, a dict its values sorted by key."""
    def obj(v):
        if isinstance(v, list):
            return str(len(v))
        if isinstance(v, dict):
            return ""
        return v if isinstance(v, str) else str(v)

    out = []
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, dict):
            out.append("\t".join(obj(v) for _, v in sorted(item.items())))
        elif isinstance(item, list):
            out.append("\t".join(obj(v) for v in item))
        elif isinstance(item, bool):
            out.append(str(item).lower())
        else:
            out.append(obj(item))
    return "".join(line + "\n" for line in out)


def public(value):
    """Drop the fake's private bookkeeping keys from answers."""
    hidden = {"admins", "firewall", "databases", "containers", "config", "settings", "images", "deployed", "auth", "assignments"}
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if k not in hidden}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def az(argv):
    log(["az"] + argv)
    words, opts = parse(argv)
    state = load()
    method = getattr(Az(state, opts), "_".join(words).replace("-", "_"), None)
    if method is None:
        print(f"ERROR: fake az does not know 'az {' '.join(words)}'", file=sys.stderr)
        return 2
    try:
        result = method()
    except NotFound as e:
        print(f"ERROR: {e}\nCode: ResourceNotFound", file=sys.stderr)
        return 3
    except (Fail, AssertionError, KeyError) as e:
        print(f"ERROR: {e!r}", file=sys.stderr)
        return 1
    save(state)
    result = public(result)
    if "--query" in opts:
        result = jmespath.search(opts["--query"][0], result)
    fmt = one(opts, "--output", "-o", default="json")
    if result is None or fmt == "none":
        return 0
    sys.stdout.write(tsv(result) if fmt == "tsv" else json.dumps(result, indent=2) + "\n")
    return 0


def psql(argv):
    log(["psql"] + argv)
    if os.environ.get("PGPASSWORD") != TOKEN:
        print("psql: error: FATAL: password authentication failed (no valid Entra token)", file=sys.stderr)
        return 2
    state = load()
    roles = state.setdefault("pg_roles", [])
    grants = state.setdefault("pg_grants", [])
    sql = argv[argv.index("-c") + 1]
    out = ""
    if "from pg_roles" in sql:
        name = sql.split("rolname = '")[1].split("'")[0]
        out = "1\n" if name in roles else ""
    elif "pgaadauth_create_principal" in sql:
        name = sql.split("pgaadauth_create_principal('")[1].split("'")[0]
        if name in roles:
            print(f'ERROR:  role "{name}" already exists', file=sys.stderr)
            return 1
        roles.append(name)
        out = f"Created role for {name}\n"
    elif sql.startswith("GRANT"):
        grants.append(sql)
    save(state)
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    prog = os.path.basename(sys.argv[1])
    sys.exit(psql(sys.argv[2:]) if prog == "psql" else az(sys.argv[2:]))
