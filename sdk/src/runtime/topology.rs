//! The modules and the event flows between them, derived from the declarations registered in an
//! [`App`](super::App), printable as a Mermaid diagram.

use std::collections::BTreeSet;
use std::fmt::Write;

/// What kind of processor a node of the topology is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessorKind {
    /// A data module's command processor.
    Aggregate,
    /// A reaction.
    Reaction,
    /// A projection.
    Projection,
    /// One of the two processors of a stream query.
    Query,
    /// An export to a public feed.
    Export,
}

/// One registered processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorInfo {
    /// Its kind.
    pub kind: ProcessorKind,
    /// The module it belongs to (a projection belongs to the function module of its name).
    pub module: String,
    /// Its name (its consumer group, for aggregates and reactions).
    pub name: String,
    /// The event enums it reads, with their publishing module.
    pub reads: Vec<(String, String)>,
    /// The module whose commands it writes, if any.
    pub commands: Option<String>,
}

/// Every processor registered in an app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The processors, in registration order.
    pub processors: Vec<ProcessorInfo>,
}

fn node(module: &str) -> String {
    module.replace(['-', '.'], "_")
}

impl Topology {
    /// A Mermaid flowchart: data modules as databases, function modules as boxes, an edge per
    /// subscription labelled with the event enum and the processor that reads it.
    pub fn to_mermaid(&self) -> String {
        let data: BTreeSet<&str> = self
            .processors
            .iter()
            .filter(|p| p.kind == ProcessorKind::Aggregate)
            .map(|p| p.module.as_str())
            .collect();
        let mut modules: BTreeSet<&str> = self.processors.iter().map(|p| p.module.as_str()).collect();
        modules.extend(self.processors.iter().flat_map(|p| p.reads.iter().map(|(m, _)| m.as_str())));
        let mut out = String::from("flowchart LR\n");
        for module in &modules {
            let shape = if data.contains(module) { ("[(", ")]") } else { ("[/", "/]") };
            let _ = writeln!(out, "    {}{}\"{module}\"{}", node(module), shape.0, shape.1);
        }
        let mut edges = BTreeSet::new();
        for processor in &self.processors {
            for (publisher, event) in &processor.reads {
                // A function module's projection is the module itself; any other processor is
                // named on its edge.
                let label = match processor.kind == ProcessorKind::Projection && processor.name == processor.module {
                    true => event.clone(),
                    false => format!("{event} → {}", processor.name),
                };
                edges.insert((node(publisher), label, node(&processor.module)));
            }
            if let Some(target) = processor.commands.as_ref().filter(|t| **t != processor.module) {
                edges.insert((node(&processor.module), format!("commands from {}", processor.name), node(target)));
            }
        }
        for (from, label, to) in edges {
            let _ = writeln!(out, "    {from} -->|\"{label}\"| {to}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(kind: ProcessorKind, module: &str, name: &str, reads: &[(&str, &str)]) -> ProcessorInfo {
        ProcessorInfo {
            kind,
            module: module.into(),
            name: name.into(),
            reads: reads.iter().map(|(m, e)| ((*m).into(), (*e).into())).collect(),
            commands: (kind == ProcessorKind::Reaction).then(|| module.into()),
        }
    }

    #[test]
    fn draws_modules_and_the_flows_between_them() {
        let topology = Topology {
            processors: vec![
                processor(ProcessorKind::Aggregate, "order", "order.aggregate", &[]),
                processor(ProcessorKind::Aggregate, "payment", "payment.aggregate", &[]),
                processor(ProcessorKind::Reaction, "order", "follow-payments", &[("payment", "PaymentEvent")]),
                processor(ProcessorKind::Projection, "payment", "orders", &[("order", "OrderEvent")]),
                processor(ProcessorKind::Projection, "order-history", "order-history", &[("order", "OrderEvent")]),
            ],
        };
        assert_eq!(
            topology.to_mermaid(),
            [
                "flowchart LR",
                r#"    order[("order")]"#,
                r#"    order_history[/"order-history"/]"#,
                r#"    payment[("payment")]"#,
                r#"    order -->|"OrderEvent"| order_history"#,
                r#"    order -->|"OrderEvent → orders"| payment"#,
                r#"    payment -->|"PaymentEvent → follow-payments"| order"#,
                "",
            ]
            .join("\n")
        );
    }
}
