import NativeDatabase from '@signalapp/sqlcipher';
const [db, fraction] = [process.argv[2]!, Number(process.argv[3] ?? 0.01)];
const native = new NativeDatabase(db);
native.pragma(`key = 'bench password'`);
const pages = Number((native.pragma('page_count') as any)[0].page_count);
const target = Math.max(1, Math.round(fraction * pages) - 1);
const maxNote = Number((native.prepare('SELECT max(id) AS n FROM notes').get() as any).n);
const maxA = Number((native.prepare('SELECT max(id) AS n FROM attachments').get() as any).n);
const note = native.prepare("UPDATE notes SET body = hex(randomblob(300)) || ' lorem ipsum dolor sit amet' WHERE id = ?");
const att = native.prepare('UPDATE attachments SET data = randomblob(1500) WHERE id = ?');
native.exec('BEGIN');
for (let i = 0; i < target; i++) { if (i % 2) att.run([1 + Math.floor(Math.random() * maxA)]); else note.run([1 + Math.floor(Math.random() * maxNote)]); }
native.exec('COMMIT');
native.close();
