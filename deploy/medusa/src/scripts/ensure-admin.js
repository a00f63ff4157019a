// Creates the store's first admin user, run by `medusa exec ./src/scripts/ensure-admin.js` (from .medusa/server).
// Reads ADMIN_EMAIL and ADMIN_PASSWORD from the environment, so the password never appears on a command line
// (`medusa user -e … -p …` would put it in argv, and it fails on a second run because the user exists).
//
// Idempotent: a user that already exists with an email/password identity is left alone (its password is NOT
// reset to ADMIN_PASSWORD), unless ADMIN_PASSWORD_RESET is "true": a clone's first bootstrap sets it, since the
// clone's database holds the password of the store it was made from. A half-finished earlier run (identity without
// user, or user without identity) is completed.
const { ContainerRegistrationKeys, Modules } = require("@medusajs/framework/utils")
const { createUserAccountWorkflow } = require("@medusajs/medusa/core-flows")

const PROVIDER = "emailpass"

/** @param {import("@medusajs/framework/types").ExecArgs} args */
async function ensureAdmin({ container }) {
  const email = (process.env.ADMIN_EMAIL || "").trim().toLowerCase()
  const password = process.env.ADMIN_PASSWORD || ""
  if (!email || !password) throw new Error("ADMIN_EMAIL and ADMIN_PASSWORD must both be set")

  const logger = container.resolve(ContainerRegistrationKeys.LOGGER)
  const userModule = container.resolve(Modules.USER)
  const authModule = container.resolve(Modules.AUTH)

  const [user] = await userModule.listUsers({ email })
  const [providerIdentity] = await authModule.listProviderIdentities({ provider: PROVIDER, entity_id: email })

  let authIdentityId = providerIdentity?.auth_identity_id
  if (authIdentityId && process.env.ADMIN_PASSWORD_RESET === "true") {
    const { success, error } = await authModule.updateProvider(PROVIDER, { entity_id: email, password })
    if (!success) throw new Error(`setting the password of ${email} failed: ${error ?? "no reason given"}`)
    logger.info(`ensure-admin: set the password of ${email} from this store's Secret`)
  }
  if (!authIdentityId) {
    const { success, authIdentity, error } = await authModule.register(PROVIDER, { body: { email, password } })
    if (!success || !authIdentity) throw new Error(`registering ${email} failed: ${error ?? "no identity returned"}`)
    authIdentityId = authIdentity.id
    logger.info(`ensure-admin: created the ${PROVIDER} identity of ${email}`)
  }

  if (!user) {
    const { result } = await createUserAccountWorkflow(container).run({
      input: { authIdentityId, userData: { email } },
    })
    logger.info(`ensure-admin: created admin user ${result.id} (${email})`)
    return
  }

  const authIdentity = await authModule.retrieveAuthIdentity(authIdentityId)
  const linkedUser = authIdentity.app_metadata?.user_id
  if (linkedUser === user.id) {
    logger.info(`ensure-admin: admin user ${user.id} (${email}) already exists, nothing to do`)
    return
  }
  if (linkedUser) {
    throw new Error(`the ${PROVIDER} identity of ${email} belongs to user ${linkedUser}, not ${user.id}`)
  }
  await authModule.updateAuthIdentities({
    id: authIdentityId,
    app_metadata: { ...(authIdentity.app_metadata ?? {}), user_id: user.id },
  })
  logger.info(`ensure-admin: linked admin user ${user.id} (${email}) to its ${PROVIDER} identity`)
}

exports.default = ensureAdmin
