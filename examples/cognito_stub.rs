//! A stand-in for Cognito that answers at once, for load tests of attrgate itself:
//! `AdminUpdateUserAttributes` succeeds, `DescribeUserPool` returns a pool with a mutable
//! `custom:tenant_id`, `AdminGetUser` returns a user of tenant `acme`, and
//! `AdminListGroupsForUser` returns no group.
//! Usage: `cargo run --release --example cognito_stub -- 127.0.0.1:PORT`.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

async fn answer(req: HttpRequest, _body: web::Bytes) -> HttpResponse {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let body = match target.rsplit('.').next().unwrap_or_default() {
        "DescribeUserPool" => {
            r#"{"UserPool":{"Id":"us-east-1_bench","Name":"bench","SchemaAttributes":[{"Name":"custom:tenant_id","AttributeDataType":"String","Mutable":true}]}}"#
        }
        "AdminGetUser" => {
            r#"{"Username":"ann","UserAttributes":[{"Name":"custom:tenant_id","Value":"acme"}]}"#
        }
        "AdminListGroupsForUser" => r#"{"Groups":[]}"#,
        _ => "{}",
    };
    HttpResponse::Ok()
        .content_type("application/x-amz-json-1.1")
        .insert_header(("x-amzn-requestid", "stub"))
        .body(body)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5900".into());
    HttpServer::new(|| App::new().default_service(web::to(answer)))
        .workers(1)
        .bind(address)?
        .run()
        .await
}
