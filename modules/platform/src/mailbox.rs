//! Where ticket mails go: counted in memory in one process, or written as files to a folder that
//! processes share, so that a run spread over several processes (and killed now and then) can
//! count distinct mails.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ticket::{MailError, MailSender, TicketMail};

/// How many distinct mails went out.
pub trait MailCount: Send + Sync {
    /// Distinct mails sent.
    fn sent(&self) -> u64;
}

impl MailCount for crate::CountingMailer {
    fn sent(&self) -> u64 {
        crate::CountingMailer::sent(self)
    }
}

/// A mail service that writes each mail to `<folder>/<idempotency key>.eml`, once: a mail sent
/// again (a retry, a process restarted before it committed) finds its file and is not repeated.
#[derive(Debug, Clone)]
pub struct FolderMailer {
    folder: PathBuf,
}

impl FolderMailer {
    /// Mails into `folder`, which is created if missing.
    pub fn new(folder: impl Into<PathBuf>) -> std::io::Result<Self> {
        let folder = folder.into();
        std::fs::create_dir_all(&folder)?;
        Ok(FolderMailer { folder })
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    fn write(&self, mail: &TicketMail) -> std::io::Result<()> {
        let path = self.folder.join(format!("{}.eml", mail.idempotency_key));
        if path.exists() {
            return Ok(());
        }
        // Written aside and renamed: a process killed half-way leaves no half mail under the
        // final name.
        let partial = self.folder.join(format!("{}.partial", mail.idempotency_key));
        let mut file = std::fs::File::create(&partial)?;
        write!(
            file,
            "To: customer {}\r\nSubject: Your ticket {}\r\n\r\nYour ticket {} for order {} is ready.\r\n",
            mail.customer_id, mail.ticket_id, mail.ticket_id, mail.order_id
        )?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)
    }
}

#[async_trait]
impl MailSender for FolderMailer {
    async fn send(&self, mail: &TicketMail) -> Result<(), MailError> {
        let mailer = self.clone();
        let mail = mail.clone();
        let folder = self.folder.display().to_string();
        tokio::task::spawn_blocking(move || mailer.write(&mail))
            .await
            .map_err(|error| MailError(format!("writing a mail into {folder}: {error}")))?
            .map_err(|error| MailError(format!("writing a mail into {folder}: {error}")))
    }
}

impl MailCount for FolderMailer {
    fn sent(&self) -> u64 {
        std::fs::read_dir(&self.folder)
            .map(|entries| {
                entries.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count()
            })
            .unwrap_or(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tramline::ReferenceId;

    #[tokio::test]
    async fn a_mail_sent_twice_is_one_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mailer = FolderMailer::new(dir.path().join("mail")).expect("created");
        let mail = TicketMail {
            idempotency_key: uuid::Uuid::now_v7(),
            ticket_id: ReferenceId::generate(),
            order_id: ReferenceId::generate(),
            customer_id: ReferenceId::generate(),
        };
        mailer.send(&mail).await.expect("sent");
        mailer.send(&mail).await.expect("sent again");
        assert_eq!(mailer.sent(), 1);
    }
}
