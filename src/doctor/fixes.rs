//! The fixes the doctor prints: exact commands with the names it knows filled in.
//!
//! On App Service the site's own variables say where it runs (`WEBSITE_SITE_NAME`,
//! `WEBSITE_RESOURCE_GROUP`); elsewhere the commands carry `<placeholders>`.

use std::collections::HashMap;

use crate::config::AZURE_POSTGRES_DOMAINS;

/// Where the app runs, as far as its environment says.
#[derive(Debug, Clone)]
pub struct AzureContext {
    pub site: String,
    pub resource_group: String,
    /// Running on App Service (its variables are set).
    pub on_app_service: bool,
}

impl AzureContext {
    pub fn from_vars(vars: &HashMap<String, String>) -> Self {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        Self {
            site: get("WEBSITE_SITE_NAME").unwrap_or("<app-name>").to_owned(),
            resource_group: get("WEBSITE_RESOURCE_GROUP")
                .unwrap_or("<resource-group>")
                .to_owned(),
            on_app_service: get("WEBSITE_SITE_NAME").is_some(),
        }
    }

    fn app_settings(&self, settings: &str) -> String {
        format!(
            "az webapp config appsettings set --resource-group {} --name {} --settings {settings}",
            self.resource_group, self.site
        )
    }

    pub fn fix_setting_hint(&self) -> String {
        format!(
            "correct the variable named above in the app settings:\n{}",
            self.app_settings("NAME=value")
        )
    }

    /// The identity endpoint says the client id is not an identity of this app.
    pub fn wrong_client_id(&self, client_id: &str) -> String {
        format!(
            "AZURE_CLIENT_ID={client_id} is not an identity assigned to this app. See which are:\n\
             az webapp identity show --resource-group {rg} --name {site} --query userAssignedIdentities\n\
             then set the client id of the right one:\n\
             {settings}\n\
             or assign the identity to the app:\n\
             az webapp identity assign --resource-group {rg} --name {site} --identities \"$(az identity show --resource-group {rg} --name <identity-name> --query id --output tsv)\"",
            rg = self.resource_group,
            site = self.site,
            settings = self.app_settings("AZURE_CLIENT_ID=<client-id>"),
        )
    }

    /// No client id and no system-assigned identity.
    pub fn no_identity(&self) -> String {
        format!(
            "give the app an identity and name it in AZURE_CLIENT_ID:\n\
             az webapp identity assign --resource-group {rg} --name {site} --identities \"$(az identity show --resource-group {rg} --name <identity-name> --query id --output tsv)\"\n\
             {settings}",
            rg = self.resource_group,
            site = self.site,
            settings = self.app_settings(
                "AZURE_CLIENT_ID=\"$(az identity show --resource-group <resource-group> --name <identity-name> --query clientId --output tsv)\""
            ),
        )
    }

    /// The database host does not answer: a firewall rule is the usual cause on Azure.
    pub fn postgres_firewall(&self, host: &str) -> String {
        let server = server_name(host);
        let rule = |name: &str, ip: &str| {
            format!(
                "az postgres flexible-server firewall-rule create --resource-group {} --server-name {server} --name {name} --start-ip-address {ip} --end-ip-address {ip}",
                self.resource_group
            )
        };
        if self.on_app_service {
            format!(
                "let Azure services (this app) through the server's firewall:\n{}",
                rule("AllowAllAzureServicesAndResourcesWithinAzureIps", "0.0.0.0")
            )
        } else {
            format!(
                "let this machine through the server's firewall (and check DBHOST and DBPORT):\n{}",
                rule("AllowMyIP", "<your-ip>")
            )
        }
    }

    /// The server refused the identity's sign-in: its role was never created (or `DBUSER` is
    /// not its name).
    pub fn postgres_principal(&self, host: &str, user: &str, database: &str) -> String {
        format!(
            "create the identity's PostgreSQL role (DBUSER must be the identity's name), signed in with az as the server's Microsoft Entra administrator:\n\
             {token}\n\
             psql \"host={host} dbname=postgres user=<admin-user-principal-name> sslmode=require\" -c \"select * from pgaadauth_create_principal('{literal}', false, false);\"\n\
             psql \"host={host} dbname={database} user=<admin-user-principal-name> sslmode=require\" -c '{grants}'",
            token = ADMIN_TOKEN,
            literal = user.replace('\'', "''"),
            grants = migration_grants(user, database),
        )
    }

    /// The role may not create the tables the migrations need.
    pub fn postgres_grant_create(&self, host: &str, user: &str, database: &str) -> String {
        format!(
            "let the role create its tables (PostgreSQL 15 and later give new roles no CREATE on schema public), as the server's administrator:\n\
             {ADMIN_TOKEN}\n\
             psql \"host={host} dbname={database} user=<admin-user-principal-name> sslmode=require\" -c '{}'",
            migration_grants(user, database)
        )
    }

    /// Tables exist but the role may not use them (created by another role).
    pub fn postgres_table_grants(&self, host: &str, user: &str, database: &str) -> String {
        let role = identifier(user);
        format!(
            "grant the role what the app does with its tables, as their owner or the administrator:\n\
             {ADMIN_TOKEN}\n\
             psql \"host={host} dbname={database} user=<admin-user-principal-name> sslmode=require\" -c 'GRANT SELECT, INSERT, UPDATE ON restaurant TO {role}; GRANT SELECT, INSERT ON review TO {role};'"
        )
    }

    pub fn postgres_database(&self, host: &str, database: &str) -> String {
        format!(
            "create the database:\naz postgres flexible-server db create --resource-group {} --server-name {} --name {database}",
            self.resource_group,
            server_name(host)
        )
    }

    /// The identity may not read or write blobs: Storage Blob Data Contributor, scoped to the
    /// storage account only.
    pub fn storage_role(&self, object_id: Option<&str>, account: &str) -> String {
        let assignee = match object_id {
            Some(oid) => {
                format!("--assignee-object-id {oid} --assignee-principal-type ServicePrincipal")
            }
            None => "--assignee <identity-client-id>".to_owned(),
        };
        format!(
            "give the app's identity the data role on the storage account (not the resource group):\n\
             az role assignment create {assignee} --role \"Storage Blob Data Contributor\" --scope \"$(az storage account show --name {account} --query id --output tsv)\"\n\
             (role assignments take up to a few minutes to apply)"
        )
    }

    /// The identity may not publish telemetry: Monitoring Metrics Publisher (it covers every
    /// kind of telemetry, not only metrics), scoped to the Application Insights component only.
    pub fn monitoring_role(&self, object_id: Option<&str>) -> String {
        let assignee = match object_id {
            Some(oid) => {
                format!("--assignee-object-id {oid} --assignee-principal-type ServicePrincipal")
            }
            None => "--assignee <identity-client-id>".to_owned(),
        };
        format!(
            "give the app's identity the publisher role on the Application Insights component (not the resource group):\n\
             az role assignment create {assignee} --role \"Monitoring Metrics Publisher\" --scope \"$(az resource show --resource-group {rg} --name <component-name> --resource-type microsoft.insights/components --query id --output tsv)\"\n\
             (role assignments take up to a few minutes to apply)",
            rg = self.resource_group
        )
    }

    pub fn storage_container(&self, account: &str, container: &str) -> String {
        format!(
            "create the container (private: the app links photos with SAS):\n\
             az storage container-rm create --storage-account {account} --name {container} --public-access off\n\
             or set STORAGE_CONTAINER_NAME to the container that exists:\n{}",
            self.app_settings("STORAGE_CONTAINER_NAME=<container>")
        )
    }
}

/// A token for the signed-in administrator, passed to psql without printing it.
const ADMIN_TOKEN: &str = "export PGPASSWORD=\"$(az account get-access-token --resource-type oss-rdbms --query accessToken --output tsv)\"";

/// The privileges the migrations need and no more: connect, and create tables in `public`
/// (the role then owns them). The deploy script grants exactly these.
pub fn migration_grants(user: &str, database: &str) -> String {
    let role = identifier(user);
    format!(
        "GRANT CONNECT ON DATABASE {} TO {role}; GRANT USAGE, CREATE ON SCHEMA public TO {role};",
        identifier(database)
    )
}

/// A double-quoted SQL identifier.
fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The flexible server's name from its host (`<name>.postgres.database.azure.com`).
fn server_name(host: &str) -> String {
    AZURE_POSTGRES_DOMAINS
        .iter()
        .find_map(|domain| host.strip_suffix(domain))
        .unwrap_or("<server-name>")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_service_variables_fill_in_the_names() {
        let vars: HashMap<String, String> = [
            ("WEBSITE_SITE_NAME", "app-demo"),
            ("WEBSITE_RESOURCE_GROUP", "rg-demo"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let context = AzureContext::from_vars(&vars);
        assert!(context.on_app_service);
        let fix = context.postgres_firewall("psql-demo.postgres.database.azure.com");
        assert!(
            fix.contains("--resource-group rg-demo --server-name psql-demo"),
            "{fix}"
        );
        assert!(fix.contains("0.0.0.0"), "{fix}");
    }

    #[test]
    fn role_names_are_quoted_as_identifiers() {
        assert_eq!(
            migration_grants("id-demo", "restaurant"),
            "GRANT CONNECT ON DATABASE \"restaurant\" TO \"id-demo\"; GRANT USAGE, CREATE ON SCHEMA public TO \"id-demo\";"
        );
    }
}
