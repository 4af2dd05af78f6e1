// A strict CommonJS consumer (require through the exports map).
import hamt = require('concurrent-hamt')

const m = new hamt.Hamt<number, string>()
m.set(1, 'one')
const one: string | undefined = m.get(1)
const token: string = m.share().token
m.close()

export { one, token }
