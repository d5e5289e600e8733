//! The OpenAPI 3.1 document, generated from the route annotations, and Swagger UI.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{DeniedAttribute, FieldError, Problem};
use crate::policy::{ConstraintView, Permissions, RolePermissions};
use crate::routes::{attributes, health, permissions};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "attrgate",
        description = "A policy-enforcing gateway in front of Cognito AdminUpdateUserAttributes. \
            Every request is checked against a YAML policy of which attributes each role may change \
            or mark verified; only fully allowed requests reach Cognito, and every decision is audited."
    ),
    paths(attributes::update_attributes, permissions::get_permissions, health::healthz, health::readyz, health::metrics),
    components(schemas(
        attributes::UpdateAttributesRequest,
        attributes::UpdateAttributesResponse,
        Problem,
        FieldError,
        DeniedAttribute,
        health::Readiness,
        Permissions,
        RolePermissions,
        ConstraintView
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "attributes", description = "Change Cognito user attributes under the policy"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON, exactly as committed at `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
