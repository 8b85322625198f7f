"""Evaluate the real Pulumi program offline, under Pulumi's mocks, for one stack's config file.

No Pulumi CLI, no cloud credentials: the program in `stack/__main__.py` runs in this process against a
mock engine that records every resource it declares. `backend-iac plan` and the doctor build on
`evaluate_stack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import runpy
import sys
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from stack.config import LOCATION_KEY, PROJECT, StackConfig, StackConfigError, config_key, short_key

_FAKE_SUBSCRIPTION: Final = "00000000-0000-0000-0000-00000000aaaa"
_FAKE_TENANT: Final = "00000000-0000-0000-0000-00000000bbbb"
_CLIENT_CONFIG_FUNCTION: Final = "azure-native:authorization:getClientConfig"
_FEDERATED_CREDENTIAL: Final = "azure-native:managedidentity:FederatedIdentityCredential"
_MOCK_NAMESPACE: Final = uuid.UUID("6d6f636b-0000-4000-8000-00000000cafe")


class StackFileError(Exception):
    """Pulumi.yaml or Pulumi.<stack>.yaml is missing or unreadable."""


class ProgramError(Exception):
    """The checkout cannot be evaluated: it has no program (stack/__main__.py), or its program fails."""


@dataclass(frozen=True)
class DeclaredResource:
    """One resource the program declares: its Pulumi type token, logical name and inputs (camelCase)."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    # Dotted input paths whose values are Pulumi secrets (shown as "[secret]" by the plan).
    secret_paths: frozenset[str] = frozenset()
    # Logical names of the resources this one waits for (through its inputs or depends_on), sorted.
    depends_on: tuple[str, ...] = ()
    # Input paths whose change replaces the resource (the replace_on_changes option), sorted.
    replace_on_changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    """What the program declared for one stack: resources in registration order, outputs, sorted OIDC subjects."""

    stack: str
    resources: tuple[DeclaredResource, ...]
    outputs: Mapping[str, Any]
    federated_subjects: tuple[str, ...] = field(default=())
    # The stack config the program ran with, validated (None only for `run_under_mocks` alone), and the
    # raw qualified values (`backend-iac:<key>` -> string) as the Pulumi CLI hands them to a program.
    config: StackConfig | None = None
    config_values: Mapping[str, str] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[DeclaredResource]:
        return [resource for resource in self.resources if resource.type == resource_type]


def _pulumi_config_string(value: object) -> str:
    """Render a YAML config value as the Pulumi CLI hands it to a program."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{path}: not found"
        raise StackFileError(msg) from None
    except (OSError, yaml.YAMLError) as error:
        msg = f"{path}: unreadable ({error})"
        raise StackFileError(msg) from None
    if not isinstance(document, dict):
        msg = f"{path}: expected a mapping at the top level"
        raise StackFileError(msg)
    return document


def stack_config_values(root: Path, stack: str) -> dict[str, str]:
    """Pulumi.yaml's defaults overlaid with Pulumi.<stack>.yaml's values: qualified key -> config string."""
    return config_values(_read_yaml(root / "Pulumi.yaml"), _read_yaml(root / f"Pulumi.{stack}.yaml"))


def config_values(project: Mapping[str, Any], stack_file: Mapping[str, Any]) -> dict[str, str]:
    """The config a program receives from a parsed Pulumi.yaml and Pulumi.<stack>.yaml, as the CLI builds it.

    Secure (`secure:`) values cannot be decrypted offline and are refused: this stack declares none.
    """
    values: dict[str, str] = {}
    declared = project.get("config") or {}
    for name, spec in declared.items():
        key = name if ":" in name else config_key(name)
        if isinstance(spec, dict) and "default" in spec:
            values[key] = _pulumi_config_string(spec["default"])
        elif isinstance(spec, dict) and "value" in spec:
            values[key] = _pulumi_config_string(spec["value"])
    for key, value in (stack_file.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            msg = f"{key}: a secure value cannot be read offline"
            raise StackConfigError({key: msg})
        values[key if ":" in key else config_key(key)] = _pulumi_config_string(value)
    return values


def _secret_paths(value: Any, path: str = "") -> set[str]:
    from pulumi.runtime import rpc

    found: set[str] = set()
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return {path}
        for key, item in value.items():
            found |= _secret_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found |= _secret_paths(item, f"{path}[{index}]")
    return found


def _unwrap_secrets(value: Any) -> Any:
    """Plain values: secrets unwrapped, and whole numbers back to int (the wire carries every number as a double)."""
    from pulumi.runtime import rpc

    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _unwrap_secrets(value.get("value"))
        return {key: _unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _mock_outputs(resource_type: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Plausible values for the outputs the program reads (names, hosts, identity ids), from the inputs.

    Pulumi fills every output not returned here from the input of the same name, which breaks where
    ARM's output shape differs from its input: a web app's identities go in as a list, come back a map.
    """
    outputs: dict[str, Any] = {}
    name_input = {
        "azure-native:resources:ResourceGroup": "resourceGroupName",
        "azure-native:dbforpostgresql:Server": "serverName",
        "azure-native:keyvault:Vault": "vaultName",
        "azure-native:managedidentity:UserAssignedIdentity": "resourceName",
        "azure-native:network:VirtualNetwork": "virtualNetworkName",
        "azure-native:privatedns:PrivateZone": "privateZoneName",
    }.get(resource_type, "name")
    azure_name = str(inputs.get(name_input) or name)
    outputs["name"] = azure_name
    if resource_type == "azure-native:web:WebApp":
        outputs["defaultHostName"] = f"{azure_name}.azurewebsites.net"
        identity = inputs.get("identity") or {}
        outputs["identity"] = {
            "type": identity.get("type"),
            "userAssignedIdentities": {str(key): {} for key in identity.get("userAssignedIdentities") or []},
        }
    elif resource_type == "azure-native:dbforpostgresql:Server":
        outputs["fullyQualifiedDomainName"] = f"{azure_name}.postgres.database.azure.com"
    elif resource_type == "azure-native:managedidentity:UserAssignedIdentity":
        outputs["clientId"] = f"client-id-of-{azure_name}"
        outputs["principalId"] = f"principal-id-of-{azure_name}"
    elif resource_type == "azure-native:applicationinsights:Component":
        # The shape Azure returns (learn.microsoft.com/azure/azure-monitor/app/sdk-connection-string).
        outputs["connectionString"] = (
            "InstrumentationKey=00000000-0000-0000-0000-00000000cccc;"
            f"IngestionEndpoint=https://{inputs.get('location', 'region')}-0.in.applicationinsights.azure.com/"
        )
    elif resource_type == "azuread:index/application:Application":
        # Entra gives every application a client id and an object id (GUIDs); stable per logical name.
        outputs["clientId"] = str(uuid.uuid5(_MOCK_NAMESPACE, f"client-id:{name}"))
        outputs["objectId"] = str(uuid.uuid5(_MOCK_NAMESPACE, f"object-id:{name}"))
    elif resource_type == "azuread:index/servicePrincipal:ServicePrincipal":
        outputs["objectId"] = str(uuid.uuid5(_MOCK_NAMESPACE, f"object-id:{name}"))
    elif resource_type == "azure-native:keyvault:Secret":
        outputs["properties"] = {
            "secretUri": f"https://vault.vault.azure.net/secrets/{inputs.get('secretName', name)}",
        }
    elif resource_type == "random:index/randomPassword:RandomPassword":
        outputs["result"] = "mock" + "x" * 28
    return outputs


def _mock_id(resource_type: str, name: str, inputs: dict[str, Any]) -> str:
    """ARM-shaped ids for the network resources, whose ids other resources and the policies take apart
    (which VNet a subnet belongs to); `/mock/<type>/<name>` for everything else."""
    group = f"/subscriptions/{_FAKE_SUBSCRIPTION}/resourceGroups/{inputs.get('resourceGroupName') or 'group'}"
    if resource_type == "azure-native:network:VirtualNetwork":
        vnet = inputs.get("virtualNetworkName") or name
        return f"{group}/providers/Microsoft.Network/virtualNetworks/{vnet}"
    if resource_type == "azure-native:network:Subnet":
        vnet, subnet = inputs.get("virtualNetworkName"), inputs.get("subnetName") or name
        return f"{group}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"
    if resource_type == "azure-native:privatedns:PrivateZone":
        zone = inputs.get("privateZoneName") or name
        return f"{group}/providers/Microsoft.Network/privateDnsZones/{zone}"
    return f"/mock/{resource_type}/{name}"


def recording_mocks(recorded: list[DeclaredResource]) -> Any:
    """Mocks that append every declared resource to `recorded` and answer getClientConfig.

    Pass them to `recording_monitor` too, or secret inputs are recorded without their secret mark.
    """
    import pulumi

    noted: dict[tuple[str, str], tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]] = {}

    class RecordingMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
            recorded.append(
                DeclaredResource(
                    type=args.typ,
                    name=args.name,
                    inputs=_unwrap_secrets(args.inputs),
                    secret_paths=noted.get((args.typ, args.name), (frozenset(), (), ()))[0],
                    depends_on=noted.get((args.typ, args.name), (frozenset(), (), ()))[1],
                    replace_on_changes=noted.pop((args.typ, args.name), (frozenset(), (), ()))[2],
                )
            )
            inputs = _unwrap_secrets(args.inputs)
            return _mock_id(args.typ, args.name, inputs), _mock_outputs(args.typ, args.name, inputs)

        def call(
            self, args: pulumi.runtime.MockCallArgs
        ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
            if args.token == _CLIENT_CONFIG_FUNCTION:
                return {
                    "subscriptionId": _FAKE_SUBSCRIPTION,
                    "tenantId": _FAKE_TENANT,
                    "clientId": "mock-client",
                    "objectId": "mock-object",
                }, []
            return {}, []

        def note(
            self,
            type_: str,
            name: str,
            secret_paths: frozenset[str],
            depends_on: tuple[str, ...],
            replace_on_changes: tuple[str, ...] = (),
        ) -> None:
            noted[(type_, name)] = (secret_paths, depends_on, replace_on_changes)

    return RecordingMocks()


def recording_monitor(mocks: Any) -> Any:
    """A mock monitor that tells `mocks` which inputs are secrets, what each resource depends on, and which
    input changes replace it.

    The mocks alone see secrets unwrapped and no dependencies.
    """
    from google.protobuf import json_format  # type: ignore[import-untyped]  # protobuf ships no stubs
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            raw = json_format.MessageToDict(request.object)
            # A URN ends in "::<logical name>".
            depends_on = tuple(sorted(str(urn).rsplit("::", 1)[-1] for urn in request.dependencies))
            replace_on_changes = tuple(sorted(str(path) for path in request.replaceOnChanges))
            mocks.note(
                request.type, request.name, frozenset(_secret_paths(raw)), depends_on, replace_on_changes
            )
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    return RecordingMonitor(mocks)


def run_under_mocks(program: Any, *, stack: str, config: Mapping[str, str]) -> Evaluation:
    """Run `program()` (which declares resources) under fresh mocks and config; collect what it declared.

    Resets Pulumi's process-wide runtime state first (root stack resource, settings, config), so it
    may be called many times in one process, one evaluation after another.
    """
    # Every event loop made while evaluating is closed when done. Pulumi's mocks answer each RPC in an
    # executor thread that makes itself a loop; left to the garbage collector at interpreter exit, those
    # loops sometimes print an "Exception ignored" traceback after a perfectly good run.
    previous_policy = asyncio.get_event_loop_policy()
    policy = _ClosingPolicy()
    asyncio.set_event_loop_policy(policy)
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="pulumi-mocks")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        return _evaluate(program, stack=stack, config=config)
    finally:
        executor.shutdown(wait=True)
        policy.close_all()
        asyncio.set_event_loop_policy(previous_policy)


class _ClosingPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, remembering each loop it makes so that they can all be closed together."""

    def __init__(self) -> None:
        super().__init__()
        self._made: list[asyncio.AbstractEventLoop] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        self._made.append(loop)
        return loop

    def close_all(self) -> None:
        for loop in self._made:
            if not loop.is_running() and not loop.is_closed():
                loop.close()
        self._made.clear()


def _evaluate(program: Any, *, stack: str, config: Mapping[str, str]) -> Evaluation:
    import pulumi
    from pulumi.runtime import config as runtime_config
    from pulumi.runtime import settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    recorded: list[DeclaredResource] = []
    settings.reset_options(project=PROJECT, stack=stack, preview=False)
    runtime_config.set_all_config(dict(config), secret_keys=[])
    mocks = recording_mocks(recorded)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, monitor=recording_monitor(mocks)
    )
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    root = settings.get_root_resource()
    _sync_await(run_pulumi_func(program))
    exported = dict(getattr(root, "outputs", {}) or {}) if root is not None else {}
    outputs = {key: _sync_await(pulumi.Output.from_input(value).future()) for key, value in exported.items()}
    resources = tuple(recorded)
    subjects = tuple(
        sorted(
            str(resource.inputs.get("subject"))
            for resource in resources
            if resource.type == _FEDERATED_CREDENTIAL
        )
    )
    return Evaluation(stack=stack, resources=resources, outputs=outputs, federated_subjects=subjects)


def evaluate_stack(root: Path, stack: str, *, program: Path | None = None) -> Evaluation:
    """Evaluate a checkout's own program (`<root>/stack/`) for `Pulumi.<stack>.yaml` under Pulumi's mocks.

    Config is read as the Pulumi CLI would: Pulumi.yaml's declared defaults, overlaid with the stack
    file's values. Returns every declared resource (type token, logical name, inputs with camelCase
    keys as the engine and the policy pack see them, and which input paths are secrets), the stack
    outputs, the exact federated credential subjects, and the validated StackConfig.

    `program` names another checkout whose `stack/` runs against `root`'s config files (the tests
    evaluate this checkout's program for a stack file they write); the command line never sets it.

    Raises StackFileError when a config file is missing or unreadable, StackConfigError (its
    `problems` map each fully qualified key to what is wrong) when the config is invalid, and
    ProgramError when the checkout has no program or its program fails; each carries a message fit to
    print without a traceback.
    """
    values = stack_config_values(root, stack)
    return evaluate_program(program or root, stack, values)


def evaluate_program(checkout: Path, stack: str, values: Mapping[str, str]) -> Evaluation:
    """Run `<checkout>/stack/__main__.py` under Pulumi's mocks with these config values (qualified keys).

    The checkout's own `stack` and `service` packages are the ones imported, even when it is not the
    checkout this tool runs from (`isolated_program`). The config is validated by the checkout's own
    parser before anything runs: the program would raise the same error inside the engine.
    """
    main = checkout / "stack" / "__main__.py"
    if not main.is_file():
        msg = f"{checkout} holds no Pulumi program (no stack/__main__.py): not a backend-iac checkout"
        raise ProgramError(msg)
    with isolated_program(checkout):
        config = _validated_config(checkout, stack, values)

        def program() -> None:
            runpy.run_path(str(main), run_name="__pulumi_program__")

        try:
            evaluation = run_under_mocks(program, stack=stack, config=values)
        except Exception as error:
            msg = f"the stack program in {checkout} failed under Pulumi's mocks: {_one_line(error)}"
            raise ProgramError(msg) from None
    return dataclasses.replace(evaluation, config=config, config_values=dict(values))


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _validated_config(checkout: Path, stack: str, values: Mapping[str, str]) -> StackConfig:
    """The checkout's own parser's verdict on `values`, as this tool's StackConfig.

    Inside `isolated_program`, `stack.config` is the checkout's module: its StackConfigError is turned
    into this tool's (same `problems`), and its StackConfig copied field by field into this tool's.
    """
    try:
        module = importlib.import_module("stack.config")
        parse = module.parse_stack_config
        project_values = {short_key(key): value for key, value in values.items() if short_key(key) != key}
        parsed = parse(
            project_values,
            stack=stack,
            location=values.get(LOCATION_KEY),
        )
    except StackConfigError:
        raise
    except Exception as error:
        problems = getattr(error, "problems", None)
        if isinstance(problems, Mapping):
            raise StackConfigError({str(key): str(value) for key, value in problems.items()}) from None
        msg = f"the stack config parser in {checkout} failed: {_one_line(error)}"
        raise ProgramError(msg) from None
    if isinstance(parsed, StackConfig):
        return parsed
    fields = {
        f.name: getattr(parsed, f.name) for f in dataclasses.fields(StackConfig) if hasattr(parsed, f.name)
    }
    try:
        return StackConfig(**fields)
    except TypeError as error:
        msg = f"the StackConfig of {checkout} does not have the fields this tool reads ({error})"
        raise ProgramError(msg) from None


# The packages a program imports from its own checkout (stack may read constants from service).
PROGRAM_PACKAGES: Final = ("stack", "service")
_THIS_CHECKOUT: Final = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def isolated_program(checkout: Path) -> Iterator[None]:
    """While inside, `import stack...` and `import service...` resolve to `checkout`'s own packages.

    For this tool's own checkout, nothing changes. For another one, the modules of those packages
    already imported are set aside, the checkout goes first on sys.path, and on the way out its
    modules are dropped and the set-aside ones put back: no second Python start-up, and the process
    is left as it was. A checkout without `service/__init__.py` falls back to this one's `service`.
    """
    if checkout.resolve() == _THIS_CHECKOUT:
        yield
        return

    def ours(name: str) -> bool:
        return name.partition(".")[0] in PROGRAM_PACKAGES

    set_aside = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in set_aside:
        del sys.modules[name]
    entry = str(checkout.resolve())
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(entry)
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(set_aside)
        importlib.invalidate_caches()
