//! `GET /permissions?pool_id=…`: what the caller's token may update and verify in a pool.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use utoipa::OpenApi;

use crate::http::error::{ApiError, Problem};
use crate::identity::Caller;
use crate::input::{Username, parse_query};
use crate::policy::{ConditionResult, ConstraintView, Permissions, RolePermissions};
use crate::update::UpdateService;

/// This route's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(get_permissions),
    components(schemas(Permissions, RolePermissions, ConstraintView, ConditionResult))
)]
pub(crate) struct Doc;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PermissionsQuery {
    /// The user pool to ask about (roles may be scoped to pools by `pools` globs), as in
    /// `updateUserAttributes`: `<region>_<id>`, ASCII only, at most 55 characters:
    /// letters, digits and `-` before the `_`, letters and digits after it. The part
    /// before the `_` must be an AWS region name unless the config fixes the region
    /// (`cognito.region`); then it is only a name (cognito-local uses `local_…`).
    /// Anything else, or a region outside the config's `cognito.allowed_regions`, is a 422.
    #[param(
        example = "us-east-1_AbC123",
        max_length = 55,
        pattern = r"^[A-Za-z0-9-]+_[0-9a-zA-Z]+$"
    )]
    pub(crate) pool_id: String,
    /// A user of the pool: roles with `target` conditions are then evaluated for this
    /// user (as an update would: attrgate reads the user's attributes, and groups when a
    /// condition names groups). Without it, such roles are listed as `conditional`.
    /// 1 to 128 characters, no control characters; anything else is a 422.
    #[param(
        example = "ann",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub(crate) username: Option<String>,
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        crate::http::resource::resource("/permissions", "GET")
            .route(web::get().to(get_permissions)),
    );
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
        (status = 200, description = "The roles that apply to this token in the pool (for `username`, if given), and their grants. An empty `roles` list means every write is denied.", body = Permissions),
        (status = 400, description = "`pool_id` is missing, or the query has an unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The token is missing or invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "With `username`, when a role's conditions had to be evaluated: the user or the pool does not exist.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`pool_id` or `username` is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The caller's own rate limit (as for updates), or, with `username`, Cognito or attrgate's budget throttled the read of the user's facts. Retry after `Retry-After` seconds.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "With `username`: Cognito failed to answer the read of the user's facts.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The token issuer's keys are not fetched yet; retry shortly.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "With `username`: Cognito did not answer the read in time.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn get_permissions(
    caller: Caller,
    req: HttpRequest,
    service: web::Data<UpdateService>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query::<PermissionsQuery>(req.query_string(), "`pool_id` and `username`")
        .map_err(ApiError::permissions_query)?;
    // Reading a user's facts costs Cognito's read budget: the caller's own limit applies.
    service
        .admit(&caller)
        .await
        .map_err(ApiError::caller_throttled)?;
    let pool = service
        .pool_id(&query.pool_id)
        .map_err(ApiError::invalid_pool_id)?;
    let user = query
        .username
        .as_deref()
        .map(Username::parse)
        .transpose()
        .map_err(ApiError::invalid_username)?;
    let permissions = service.permissions(&caller, &pool, user.as_ref()).await?;
    Ok(HttpResponse::Ok().json(permissions))
}
