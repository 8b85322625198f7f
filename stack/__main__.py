"""The Pulumi program (Pulumi.yaml: `main: stack/`): config -> components -> exports."""

import pulumi

from stack.config import load_stack_config
from stack.program import define_stack

for name, value in define_stack(load_stack_config()).items():
    pulumi.export(name, value)
