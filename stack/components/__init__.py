"""The stack's components: WebApp, PostgresDatabase, GitHubOidc (one ComponentResource each)."""
