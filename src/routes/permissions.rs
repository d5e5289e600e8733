//! `GET /permissions?pool_id=…`: what the caller's token may update and verify in a pool.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::{PoolId, parse_query};
use crate::policy::{self, Permissions};
use crate::policy_source::PolicySource;
use crate::wire::Problem;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PermissionsQuery {
    /// The user pool to ask about (roles may be scoped to pools by `pools` globs).
    #[param(example = "us-east-1_AbC123")]
    pub(crate) pool_id: String,
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/permissions", web::get().to(get_permissions));
}

/// What this token may do in a pool.
///
/// Lists the token's roles that apply in the pool (with their `update`, `verify` and
/// `deny` globs and their value constraints), the protected globs that no role may
/// write, and which attributes the token may mark verified. It answers "what can my
/// token do" without trying a write and without calling Cognito; the decision itself
/// is always made per request, by `updateUserAttributes`.
#[utoipa::path(
    get,
    path = "/permissions",
    operation_id = "getPermissions",
    tag = "attributes",
    params(PermissionsQuery),
    responses(
        (status = 200, description = "The roles that apply to this token in the pool, and their grants. An empty `roles` list means every write is denied.", body = Permissions),
        (status = 400, description = "`pool_id` is missing, or the query has an unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The token is missing or invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`pool_id` is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The token issuer's keys are not fetched yet; retry shortly.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn get_permissions(
    caller: Caller,
    req: HttpRequest,
    policy: web::Data<PolicySource>,
) -> Result<HttpResponse, ApiError> {
    let query =
        parse_query::<PermissionsQuery>(req.query_string()).map_err(ApiError::permissions_query)?;
    let pool = PoolId::parse(&query.pool_id).map_err(ApiError::invalid_pool_id)?;
    let permissions = policy::permissions(&policy.current(), &caller.roles, pool.as_str());
    Ok(HttpResponse::Ok().json(permissions))
}
