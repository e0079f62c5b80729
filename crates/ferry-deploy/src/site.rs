//! A service's static site: the config file built from its dependencies' outputs, and the
//! upload to the bucket its stack names.

use std::collections::BTreeMap;

use ferry_manifest::Service;
use ferry_outputs::{OutputCache, Outputs};
use ferry_stacks::Progress;

use crate::{DeployContext, Event, Prepared, ServiceError, ownership};

/// The content of a site's config file: the stack outputs of the service's dependencies in this
/// stage ([`Service::dependencies_in`]), by service, as JSON. An output holding a secret the
/// masker knows (a SecureString echoed by a stack) is refused: the site is public.
pub(crate) async fn site_config(
    ctx: &DeployContext<'_>,
    service: &Service,
    cache: &OutputCache,
) -> Result<Vec<u8>, ServiceError> {
    let mut all: BTreeMap<String, Outputs> = BTreeMap::new();
    for dep in service.dependencies_in(ctx.stage) {
        let stack = ctx.ws.stack_name(&dep, ctx.stage);
        let owner = ownership(ctx.ws, ctx.stage, &dep);
        let outputs = cache.get(&stack, Some(&owner)).await?.unwrap_or_default();
        if let Some((output, _)) = outputs.iter().find(|(_, v)| ctx.masker.holds_secret(v)) {
            return Err(ServiceError::SiteSecret {
                service: service.name.clone(),
                from: dep,
                output: output.clone(),
            });
        }
        all.insert(dep, outputs);
    }
    let mut bytes = serde_json::to_vec_pretty(&all).expect("outputs serialize");
    bytes.push(b'\n');
    Ok(bytes)
}

/// Uploads a service's static site to the bucket its stack output names.
pub(crate) async fn publish_site(
    ctx: &DeployContext<'_>,
    p: &Prepared,
    service: &Service,
    site: &ferry_package::PackagedSite,
    outputs: &Outputs,
    config: Option<&[u8]>,
    on: &(dyn Fn(Event) + Send + Sync),
) -> Result<(), ServiceError> {
    let bucket = outputs
        .get(&site.bucket_output)
        .ok_or_else(|| ServiceError::SiteBucket {
            output: site.bucket_output.clone(),
            stack: ctx.ws.stack_name(&service.name, ctx.stage),
            known: outputs.keys().cloned().collect::<Vec<_>>().join(", "),
            template: service.template_path(),
        })?;
    let n = ferry_package::upload_site(&p.s3, &p.dir, site, bucket, config).await?;
    on(Event::Stack {
        service: service.name.clone(),
        progress: Progress::Note(format!(
            "site: {n} files published to s3://{bucket}/{}",
            site.prefix
        )),
    });
    Ok(())
}
