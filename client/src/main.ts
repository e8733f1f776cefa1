// The web app's entry: picks the screen from the path. "/" is the landing page
// (releases, open a room); "/r/:roomId" is a room, reached from a join link
// ("#invite=…" in its fragment) or after opening one.
import { h, mainElement, clear } from './dom.ts';
import { showLanding } from './landing.ts';
import { showRoomEntry } from './join.ts';

const ROOM_PATH = /^\/r\/([A-Za-z0-9_-]{8,32})\/?$/;

let leaveCurrent: (() => void) | null = null;

export function navigate(path: string): void {
  history.pushState(null, '', path);
  route();
}

function route(): void {
  leaveCurrent?.();
  leaveCurrent = null;
  const main = mainElement();
  clear(main);
  const room = ROOM_PATH.exec(location.pathname);
  if (location.pathname === '/' || location.pathname === '') {
    document.title = 'Remixroom';
    showLanding(main, { navigate });
  } else if (room) {
    leaveCurrent = showRoomEntry(main, room[1]!, { navigate });
  } else {
    document.title = 'Not found · Remixroom';
    main.append(h('section', { class: 'panel narrow' }, h('h1', {}, 'Nothing here'), h('p', {}, 'This address is not a room. '), h('a', { href: '/' }, 'Go to the start page')));
  }
}

addEventListener('popstate', route);
route();
