//! The customer data module: registers customers, keeps their details and forgets them. It is
//! the only place that holds customer data, so that it can be erased: names and e-mails are
//! personal data, sealed with each customer's key on the log (commands, events, snapshots), and
//! `Forget` deletes the key.

use customer_contract::{CustomerCommand, CustomerEvent, CustomerId};
use serde::{Deserialize, Serialize};
use tramline::Message as _;
use tramline::privacy::Personal;
use tramline::runtime::{CommandGateway, RuntimeError};
use tramline::{Aggregate, App};

pub use customer_contract as contract;

/// One customer.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    details: Option<Details>,
    /// Forgotten: the ID cannot be used again.
    #[serde(default)]
    forgotten: bool,
}

/// Sealed in the snapshots like in the events: the customer is their subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Details {
    name: Personal<String>,
    email: Personal<String>,
}

/// Why the customer module rejects a command. It never holds a customer's name or e-mail: a
/// rejection goes into replies (`customer.replies`) and logs, where forgetting the customer
/// cannot erase it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CustomerError {
    /// Register for an ID that is taken.
    #[error("customer {0} is already registered")]
    AlreadyRegistered(CustomerId),
    /// A command for a customer that does not exist.
    #[error("customer {0} does not exist")]
    Unknown(CustomerId),
    /// An e-mail address that is not one; the address itself is left out.
    #[error("the e-mail address is not valid: {0}")]
    InvalidEmail(EmailProblem),
    /// A blank name.
    #[error("a customer's name cannot be blank")]
    BlankName,
    /// A name that reads as erased (its key is missing, or its customer was forgotten).
    #[error("the name reads as erased; send the command again")]
    ErasedName,
    /// Update with neither a name nor an e-mail.
    #[error("update of {0} changes nothing: give a name or an e-mail")]
    NothingToUpdate(CustomerId),
    /// A command for a customer that was forgotten.
    #[error("customer {0} was forgotten: its data is erased and its ID cannot be used again")]
    Forgotten(CustomerId),
}

/// What is wrong with an e-mail address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum EmailProblem {
    /// No `@`, nothing before it, or no `.` in the domain.
    #[error("it needs a name, `@` and a domain with a dot (name@example.org)")]
    Malformed,
    /// Spaces or other white space.
    #[error("it contains white space")]
    WhiteSpace,
    /// The value reads as erased (its key is missing, or its customer was forgotten).
    #[error("it reads as erased; send the command again")]
    Erased,
}

fn valid_name(name: &Personal<String>) -> Result<(), CustomerError> {
    match name.get() {
        Some(name) if !name.trim().is_empty() => Ok(()),
        Some(_) => Err(CustomerError::BlankName),
        None => Err(CustomerError::ErasedName),
    }
}

fn valid_email(email: &Personal<String>) -> Result<(), CustomerError> {
    // An erased value (a command sealed after its customer was forgotten) is not an address.
    let Some(email) = email.get() else {
        return Err(CustomerError::InvalidEmail(EmailProblem::Erased));
    };
    if email.contains(char::is_whitespace) {
        return Err(CustomerError::InvalidEmail(EmailProblem::WhiteSpace));
    }
    match email.split_once('@') {
        Some((user, domain)) if !user.is_empty() && domain.contains('.') => Ok(()),
        _ => Err(CustomerError::InvalidEmail(EmailProblem::Malformed)),
    }
}

impl Aggregate for Customer {
    type Command = CustomerCommand;
    type Event = CustomerEvent;
    type Error = CustomerError;
    type Services = ();

    fn decide(&self, command: &CustomerCommand, _: &()) -> Result<Vec<CustomerEvent>, CustomerError> {
        if self.forgotten {
            return Err(CustomerError::Forgotten(*command.key()));
        }
        match (command, &self.details) {
            // Never registered too: a refused registration left its name and e-mail on the log.
            (CustomerCommand::Forget { customer_id }, _) => {
                Ok(vec![CustomerEvent::Forgotten { customer_id: *customer_id }])
            }
            (CustomerCommand::Register { customer_id, .. }, Some(_)) => {
                Err(CustomerError::AlreadyRegistered(*customer_id))
            }
            (CustomerCommand::Register { customer_id, name, email }, None) => {
                valid_name(name)?;
                valid_email(email)?;
                Ok(vec![CustomerEvent::Registered {
                    customer_id: *customer_id,
                    name: name.clone(),
                    email: email.clone(),
                }])
            }
            (CustomerCommand::Update { customer_id, .. }, None) => Err(CustomerError::Unknown(*customer_id)),
            (CustomerCommand::Update { customer_id, name: None, email: None }, Some(_)) => {
                Err(CustomerError::NothingToUpdate(*customer_id))
            }
            (CustomerCommand::Update { customer_id, name, email }, Some(current)) => {
                let name = name.clone().unwrap_or_else(|| current.name.clone());
                let email = email.clone().unwrap_or_else(|| current.email.clone());
                valid_name(&name)?;
                valid_email(&email)?;
                Ok(vec![CustomerEvent::Updated { customer_id: *customer_id, name, email }])
            }
        }
    }

    fn evolve(&mut self, event: &CustomerEvent) {
        match event {
            CustomerEvent::Registered { name, email, .. } | CustomerEvent::Updated { name, email, .. } => {
                self.details = Some(Details { name: name.clone(), email: email.clone() });
            }
            CustomerEvent::Forgotten { .. } => {
                self.details = None;
                self.forgotten = true;
            }
        }
    }
}

/// Adds the customer module to an app.
pub async fn register(app: &mut App) -> Result<CommandGateway<Customer>, RuntimeError> {
    app.aggregate::<Customer>(()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tramline::ReferenceId;
    use tramline::testing::AggregateTest;

    fn registered(id: CustomerId) -> CustomerEvent {
        CustomerEvent::Registered { customer_id: id, name: "Ada".into(), email: "ada@example.org".into() }
    }

    #[test]
    fn registers_a_new_customer() {
        let id = CustomerId::generate();
        AggregateTest::<Customer>::new()
            .when(CustomerCommand::Register { customer_id: id, name: "Ada".into(), email: "ada@example.org".into() })
            .then_events([registered(id)]);
    }

    #[test]
    fn rejects_a_second_registration() {
        let id = CustomerId::generate();
        AggregateTest::<Customer>::new()
            .given([registered(id)])
            .when(CustomerCommand::Register { customer_id: id, name: "Bo".into(), email: "bo@example.org".into() })
            .then_rejected_with(CustomerError::AlreadyRegistered(id));
    }

    #[test]
    fn rejects_bad_details() {
        let id = CustomerId::generate();
        AggregateTest::<Customer>::new()
            .when(CustomerCommand::Register { customer_id: id, name: "Ada".into(), email: "ada at home".into() })
            .then_rejected_with(CustomerError::InvalidEmail(EmailProblem::WhiteSpace));
        AggregateTest::<Customer>::new()
            .when(CustomerCommand::Register { customer_id: id, name: "  ".into(), email: "a@b.c".into() })
            .then_rejected_with(CustomerError::BlankName);
        // Not blank: unreadable, as an erased e-mail is.
        AggregateTest::<Customer>::new()
            .when(CustomerCommand::Register { customer_id: id, name: Personal::erased(), email: "a@b.c".into() })
            .then_rejected_with(CustomerError::ErasedName);
    }

    #[test]
    fn a_rejection_never_holds_the_address() {
        // Rejections go to `customer.replies` and logs, which forgetting cannot erase.
        let id = CustomerId::generate();
        let given = CustomerCommand::Register { customer_id: id, name: "Ada".into(), email: "ada@home".into() };
        let error = Customer::default().decide(&given, &()).expect_err("no dot in the domain");
        assert_eq!(error, CustomerError::InvalidEmail(EmailProblem::Malformed));
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains("ada@home"), "{text}");
        }
        let erased = CustomerCommand::Register { customer_id: id, name: "Ada".into(), email: Personal::erased() };
        let error = Customer::default().decide(&erased, &()).expect_err("an erased address");
        assert_eq!(error, CustomerError::InvalidEmail(EmailProblem::Erased));
    }

    #[test]
    fn updates_keep_unchanged_fields() {
        let id = CustomerId::generate();
        AggregateTest::<Customer>::new()
            .given([registered(id)])
            .when(CustomerCommand::Update { customer_id: id, name: None, email: Some("ada@new.org".into()) })
            .then_events([CustomerEvent::Updated { customer_id: id, name: "Ada".into(), email: "ada@new.org".into() }])
            .and_when(CustomerCommand::Update { customer_id: id, name: None, email: None })
            .then_rejected_with(CustomerError::NothingToUpdate(id));
    }

    #[test]
    fn forgets_a_customer_for_good() {
        let id = CustomerId::generate();
        AggregateTest::<Customer>::new()
            .given([registered(id)])
            .when(CustomerCommand::Forget { customer_id: id })
            .then_events([CustomerEvent::Forgotten { customer_id: id }])
            .and_when(CustomerCommand::Update { customer_id: id, name: Some("Ada".into()), email: None })
            .then_rejected_with(CustomerError::Forgotten(id))
            .and_when(CustomerCommand::Register {
                customer_id: id,
                name: "Ada".into(),
                email: "ada@example.org".into(),
            })
            .then_rejected_with(CustomerError::Forgotten(id))
            .and_when(CustomerCommand::Forget { customer_id: id })
            .then_rejected_with(CustomerError::Forgotten(id));
    }

    #[test]
    fn forgets_an_id_never_registered_for_good() {
        let id = CustomerId::generate();
        AggregateTest::<Customer>::new()
            .when(CustomerCommand::Forget { customer_id: id })
            .then_events([CustomerEvent::Forgotten { customer_id: id }])
            .and_when(CustomerCommand::Register {
                customer_id: id,
                name: "Ada".into(),
                email: "ada@example.org".into(),
            })
            .then_rejected_with(CustomerError::Forgotten(id));
    }

    #[test]
    fn cannot_update_an_unknown_customer() {
        let id = CustomerId::generate();
        AggregateTest::<Customer>::new()
            .when(CustomerCommand::Update { customer_id: id, name: Some("X".into()), email: None })
            .then_rejected_with(CustomerError::Unknown(id));
    }
}
