//! A temporary SQS queue subscribed to an SNS topic: see what a topic publishes, then remove it.

use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};

use crate::CheckError;

/// A queue subscribed to a topic for the length of a test. Call [`TempQueue::remove`] at the end
/// (a test that panics leaves it; its name says which test made it).
pub struct TempQueue {
    pub url: String,
    pub arn: String,
    pub subscription_arn: String,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
}

/// Maps an SDK error (SNS or SQS) to a failed check of `what`.
fn failed<E>(what: &str) -> impl FnOnce(SdkError<E>) -> CheckError + '_
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| CheckError::Failed {
        what: what.to_string(),
        message: ferry_aws::explain("an SNS or SQS call", &e).to_string(),
    }
}

impl TempQueue {
    /// Creates queue `name` (raw delivery off: messages arrive in SNS envelopes, which the SQS
    /// checks unwrap), lets only `topic_arn` send to it, and subscribes it.
    pub async fn subscribe(
        sns: &aws_sdk_sns::Client,
        sqs: &aws_sdk_sqs::Client,
        topic_arn: &str,
        name: &str,
    ) -> Result<TempQueue, CheckError> {
        let what = format!("temporary queue {name} on {topic_arn}");
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(failed(&what))?
            .queue_url
            .unwrap_or_default();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(failed(&what))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        // Least privilege: this topic may send to this queue, nothing else may.
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}
            }]
        });
        sqs.set_queue_attributes()
            .queue_url(&url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::Policy,
                policy.to_string(),
            )
            .send()
            .await
            .map_err(failed(&what))?;
        let sub = sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&arn)
            .send()
            .await
            .map_err(failed(&what))?;
        Ok(TempQueue {
            url,
            arn,
            subscription_arn: sub.subscription_arn.unwrap_or_default(),
            sns: sns.clone(),
            sqs: sqs.clone(),
        })
    }

    /// Unsubscribes and deletes the queue.
    pub async fn remove(self) -> Result<(), CheckError> {
        let what = format!("removing temporary queue {}", self.url);
        self.sns
            .unsubscribe()
            .subscription_arn(&self.subscription_arn)
            .send()
            .await
            .map_err(failed(&what))?;
        self.sqs
            .delete_queue()
            .queue_url(&self.url)
            .send()
            .await
            .map_err(failed(&what))?;
        Ok(())
    }
}
