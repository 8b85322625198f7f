"""The embedded store's two modes side by side, in process: sequential creates and reads per second.

`uv run --locked python bench/sqlite_modes.py`: WAL (local disk) against the network-share mode
(journal_mode=DELETE, locking_mode=EXCLUSIVE, one connection), both on this machine's local disk, so the
difference is the mode alone; a real SMB share adds its own round trips to every write.
"""

import asyncio
import tempfile
import time
from pathlib import Path

from service.config import SqliteStorage
from service.db.sqlite import SqliteStore
from service.db.storage import storage_mode


async def run(setting: SqliteStorage) -> None:
    path = Path(tempfile.mkdtemp()) / "m.sqlite3"
    store = SqliteStore(path, mode=storage_mode(path, setting))
    await store.migrate()
    t = time.perf_counter()
    items = [await store.create_item(owner="o", name=f"n{i}", description=None) for i in range(300)]
    w = time.perf_counter() - t
    t = time.perf_counter()
    for item in items:
        await store.get_item(owner="o", item_id=item.id)
    r = time.perf_counter() - t
    await store.close()
    print(f"{setting.value}: writes/s={300 / w:.0f} reads/s={300 / r:.0f}")


for s in (SqliteStorage.LOCAL, SqliteStorage.NETWORK):
    asyncio.run(run(s))
