"""The Pulumi program (Pulumi.yaml: `main: stack/`): config -> components -> exports."""

import pulumi

from stack.config import StackConfigError, load_stack_config
from stack.program import define_stack

try:
    config = load_stack_config()
except StackConfigError as error:
    # RunError: Pulumi prints the message (every bad key, named) without a Python traceback.
    raise pulumi.RunError(f"invalid stack config: {error}") from None

for name, value in define_stack(config).items():
    pulumi.export(name, value)
