"""Resilience benchmark: this architecture vs a naive synchronous chain, same faults, same load, one run.

    python -m bench [--quick]

See docs/benchmarks.md for what is measured and how.
"""

from localcloud.deploy import use_project_node

# The bench imports the stack's retry budget (aws-cdk-lib): its jsii runtime must start on the pinned Node.
use_project_node()
